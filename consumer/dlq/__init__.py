"""``segstream-dlq``: inspect, replay and park the consumer's dead letters (README "Dead-letter
replay"). One module per concern: :mod:`.records` and :mod:`.selection` (what a dead letter is
and which are selected), :mod:`.reader` and :mod:`.ledger` (reading, and what the replay group
has handled), :mod:`.transfer` with :mod:`.replay` and :mod:`.park` (moving records out, each
once, in :mod:`.publisher`'s transactions), :mod:`.inspection`, :mod:`.audit`, and the command
line (:mod:`.cli`, :mod:`.runner`, :mod:`.report`, :mod:`.progress`)."""
