"""Running a contest: ``contest.toml`` (:mod:`.spec`), the inbox of arriving submissions (:mod:`.inbox`), the
ledger of what arrived and what became of it (:mod:`.ledger`) and ``harness contest run`` (:mod:`.runner`)."""
