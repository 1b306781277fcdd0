"""Access: users, roles, tokens and case assignments; the access audit trail."""
