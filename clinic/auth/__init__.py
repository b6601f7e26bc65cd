"""Staff accounts and access control: sign-in, roles and the permission matrix, API tokens."""
