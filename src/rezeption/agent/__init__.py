"""The Retell agent as code: its definition in the repository (`agents/<name>/`), rendered for one
salon and base URL exactly as Retell's API receives it, and checked for what broke before."""
