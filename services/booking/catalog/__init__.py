"""The clinic's catalog: clinics, providers, appointment types, hours, patients, invitations."""
