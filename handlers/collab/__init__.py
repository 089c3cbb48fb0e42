"""The built-in ``collab`` plugin: sessions, participants, presence, locks and conflicts over ``state``."""
