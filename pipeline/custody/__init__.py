"""The custody domain: the event format, chains, signatures, the per-exhibit log and the case catalogue.

The pure core (events, chain, signing) is shared by online and offline verification."""
