"""The resource library (资源库): publishing recordings with metadata through review,
clips (微课) cut from them, and packages a provincial platform ingests.

Who does what (``controller.auth.roles``):

- a scheduler or an administrator asks to publish a recording, or cuts a clip from one;
  either is a *pending* item;
- an inspector or an administrator who did not ask approves or rejects it (a reason is
  required to reject); only approved items are listed by default and exported;
- a scheduler, an inspector or an administrator unpublishes an item, with a reason;
- every staff role browses approved items and plays them; the review queue (pending,
  rejected, unpublished) is for the people who ask and review, not technicians.

A school account does all of this only for its own school's classrooms. Pending and
approved items are kept past their lesson's retention; rejected and unpublished ones follow
it (``controller.recordings.retention``).
"""
