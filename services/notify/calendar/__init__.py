"""The provider's calendar: invites by email and the private calendar feed."""
