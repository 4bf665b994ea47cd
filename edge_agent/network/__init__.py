"""The classroom network: where the agent may stream from, and how its packets are treated.

* :mod:`edge_agent.network.interfaces` checks that the PC sits on the VLAN and subnet the
  network profile names, and picks the address ICE binds to;
* :mod:`edge_agent.network.dscp` marks audio EF and video AF41 on the media socket;
* :mod:`edge_agent.network.shaper` optionally caps the interface with a kernel HTB shaper.
"""
