"""What the services share: config, database helpers, the event contract, queues, signed links, time."""
