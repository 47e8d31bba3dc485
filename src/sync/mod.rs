//! Cloud sync. So far: the pure planner of the event log (`plan`) — which
//! outbox events make the next segment, its key and its bytes. The S3
//! executor, capture uploads, manifest pulls and payout statements build
//! on it (issue 6).

pub mod plan;
