// The public watch page of a published lesson: plays ./index.m3u8 (same signed or
// intranet path as this page) with hls.js, or natively where the browser plays HLS.
"use strict";
(function () {
  const video = document.getElementById("video");
  const state = document.getElementById("state");
  const say = (key, zh, en) => {
    document.body.dataset.state = key;
    state.textContent = `${zh} · ${en}`;
  };
  video.addEventListener("playing", () => say("playing", "直播中", "Live"));
  video.addEventListener("waiting", () => say("waiting", "缓冲中…", "Buffering…"));
  const source = "index.m3u8";
  if (window.Hls && window.Hls.isSupported()) {
    const hls = new window.Hls({ liveSyncDurationCount: 2, enableWorker: true });
    let retries = 0;
    hls.on(window.Hls.Events.MANIFEST_PARSED, () => {
      retries = 0;
      video.play().catch(() => say("paused", "点击播放", "Press play"));
    });
    hls.on(window.Hls.Events.ERROR, (_event, data) => {
      if (!data.fatal) return;
      if (data.type === window.Hls.ErrorTypes.MEDIA_ERROR) {
        hls.recoverMediaError();
        return;
      }
      // Not started yet, or the link has expired (403): try again a few times, then say so.
      retries += 1;
      const code = data.response && data.response.code;
      if (code === 403) {
        say("refused", "链接已失效，请向学校索取新链接", "This link has expired; ask the school for a new one");
        hls.destroy();
        return;
      }
      say("waiting", "直播尚未开始，稍后自动重试", "Not live yet; retrying");
      setTimeout(() => hls.loadSource(source), Math.min(10000, 1000 * retries));
    });
    hls.loadSource(source);
    hls.attachMedia(video);
  } else if (video.canPlayType("application/vnd.apple.mpegurl")) {
    video.src = source;
  } else {
    say("unsupported", "此浏览器无法播放", "This browser cannot play the lesson");
  }
})();
