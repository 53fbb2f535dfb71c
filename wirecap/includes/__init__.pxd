# Shared C-level helpers (DESIGN §2): one copy each, cimported where needed, never imported.
