"""Review: what investigators see of an exhibit (views shared by the CLI, the API and the portal)."""
