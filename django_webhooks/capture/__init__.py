"""The web process's side: a change or a ``send_event()`` call becomes an event row before it returns.

Everything here runs inside the host application's requests: cheap, no threads, and never raising
after a commit.
"""
