"""The pipeline: a run's plan carried through train -> sweep -> evaluate -> finish, written
once (`run`, `measure`), reporting to sinks (`sinks`); corruptions and attacks in `evaluation`.
The pipeline never imports the service: the store's sink is passed in."""
