//! A history checker for a replicated, partitioned log under faults.
//!
//! The history is what the clients saw: every produce (its unique value, the partition it was
//! sent to, and its outcome — acknowledged at an offset, failed, or never answered), every
//! record a consumer saw while the faults ran, and the final contents of each partition read
//! after the cluster healed. [`check`] holds them to Kafka's promise for an idempotent
//! `acks=all` producer with `min.insync.replicas` in sync:
//!
//! - **no loss**: every acknowledged record is in the final log, at the partition and offset
//!   its acknowledgement named;
//! - **no duplicates**: every value appears at most once in the final log, acknowledged or not
//!   (an unanswered produce may or may not have landed, but never twice);
//! - **order**: each partition holds one producer's records in the order it sent them;
//! - **no phantoms**: a record a consumer saw during the run is in the final log at the same
//!   offset — consumers never saw anything past a high watermark that was later truncated;
//! - **no strangers**: the final log holds nothing that was not produced.
//!
//! Values are `<prefix>-<sequence>`, with the sequence the producer's send order, so order can
//! be checked from the log alone. [`Report::render`] is the report kept in the test output.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write;

/// How a produce ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Acknowledged at this partition and offset.
    Acked {
        /// The partition.
        partition: i32,
        /// The offset.
        offset: i64,
    },
    /// Refused or timed out, with the client's error.
    Failed(String),
    /// No answer by the end of the run.
    Pending,
}

/// One produce operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProduceOp {
    /// The producer's send order (unique).
    pub sequence: u64,
    /// The partition the record was sent to.
    pub partition: i32,
    /// The record value (unique).
    pub value: String,
    /// When it was sent, ms since the run began.
    pub sent_ms: u64,
    /// When its outcome arrived, ms since the run began (the end of the run when pending).
    pub done_ms: u64,
    /// Its outcome.
    pub outcome: Outcome,
}

/// A record a consumer saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observation {
    /// Partition.
    pub partition: i32,
    /// Offset.
    pub offset: i64,
    /// Value.
    pub value: String,
}

/// A violation, with the record it concerns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// The kind: lost, misplaced, duplicated, reordered, phantom, stranger.
    pub kind: &'static str,
    /// What exactly.
    pub detail: String,
}

/// The checker's verdict.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Produces sent.
    pub produced: usize,
    /// Acknowledged.
    pub acked: usize,
    /// Failed.
    pub failed: usize,
    /// Never answered.
    pub pending: usize,
    /// Records in the final log.
    pub final_records: usize,
    /// Records consumers saw during the run.
    pub observed: usize,
    /// Unacknowledged produces (failed or pending) whose record is in the final log once; allowed.
    pub unacked_present: usize,
    /// Everything that broke a rule.
    pub violations: Vec<Violation>,
}

impl Report {
    /// Whether every rule held.
    pub fn is_clean(&self) -> bool {
        self.violations.is_empty()
    }

    /// Violations of one kind.
    pub fn count(&self, kind: &str) -> usize {
        self.violations.iter().filter(|v| v.kind == kind).count()
    }

    /// The report, for the test output.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "history check:");
        let _ = writeln!(
            out,
            "  produced {} (acknowledged {}, failed {}, unanswered {}); final log {} records; observed during the run {}",
            self.produced, self.acked, self.failed, self.pending, self.final_records, self.observed
        );
        let _ = writeln!(
            out,
            "  unacknowledged but present once: {} (allowed)",
            self.unacked_present
        );
        for kind in [
            "lost",
            "misplaced",
            "duplicated",
            "reordered",
            "phantom",
            "stranger",
        ] {
            let _ = writeln!(out, "  {kind}: {}", self.count(kind));
        }
        for violation in self.violations.iter().take(20) {
            let _ = writeln!(out, "    {}: {}", violation.kind, violation.detail);
        }
        if self.violations.len() > 20 {
            let _ = writeln!(out, "    … {} more", self.violations.len() - 20);
        }
        let _ = writeln!(
            out,
            "  verdict: {}",
            if self.is_clean() { "OK" } else { "VIOLATED" }
        );
        out
    }
}

/// The sequence number in a value `<prefix>-<sequence>`.
pub fn sequence_of(value: &str) -> Option<u64> {
    value.rsplit_once('-')?.1.parse().ok()
}

/// Checks a history against the final log (partition → records in offset order).
pub fn check(
    produced: &[ProduceOp],
    observed: &[Observation],
    final_log: &BTreeMap<i32, Vec<(i64, String)>>,
) -> Report {
    let mut report = Report {
        produced: produced.len(),
        observed: observed.len(),
        ..Report::default()
    };
    let mut violations = Vec::new();
    // Where each value is in the final log; more than one place is a duplicate.
    let mut places: HashMap<&str, Vec<(i32, i64)>> = HashMap::new();
    let mut at: HashMap<(i32, i64), &str> = HashMap::new();
    for (partition, records) in final_log {
        let mut last_sequence: Option<(u64, i64)> = None;
        for (offset, value) in records {
            report.final_records += 1;
            places
                .entry(value.as_str())
                .or_default()
                .push((*partition, *offset));
            at.insert((*partition, *offset), value.as_str());
            if let Some(sequence) = sequence_of(value) {
                // The same sequence again is a duplicate, reported as one below.
                if let Some((previous, previous_offset)) = last_sequence
                    && sequence < previous
                {
                    violations.push(Violation {
                        kind: "reordered",
                        detail: format!(
                            "partition {partition}: sequence {sequence} at offset {offset} after sequence {previous} at offset {previous_offset}"
                        ),
                    });
                }
                last_sequence = Some((sequence, *offset));
            }
        }
    }
    let sent: HashMap<&str, &ProduceOp> = produced.iter().map(|p| (p.value.as_str(), p)).collect();
    for (value, found) in &places {
        if found.len() > 1 {
            violations.push(Violation {
                kind: "duplicated",
                detail: format!("{value} at {found:?}"),
            });
        }
        if !sent.contains_key(value) {
            violations.push(Violation {
                kind: "stranger",
                detail: format!("{value} at {found:?} was never produced"),
            });
        }
    }
    for op in produced {
        match &op.outcome {
            Outcome::Acked { partition, offset } => {
                report.acked += 1;
                match places.get(op.value.as_str()) {
                    None => violations.push(Violation {
                        kind: "lost",
                        detail: format!(
                            "{} acknowledged at {partition}/{offset} (sent at {} ms, acknowledged at {} ms) is not in the log",
                            op.value, op.sent_ms, op.done_ms
                        ),
                    }),
                    // librdkafka acknowledges some records without an offset (-1001): those
                    // an idempotent producer knows were written because the broker accepted a
                    // later sequence. They must be in their partition; where is unknown.
                    Some(found) if *offset < 0 && !found.iter().any(|(p, _)| p == partition) => {
                        violations.push(Violation {
                            kind: "misplaced",
                            detail: format!(
                                "{} acknowledged in partition {partition} but found at {found:?}",
                                op.value
                            ),
                        })
                    }
                    Some(_) if *offset < 0 => {}
                    Some(found) if !found.contains(&(*partition, *offset)) => {
                        violations.push(Violation {
                            kind: "misplaced",
                            detail: format!(
                                "{} acknowledged at {partition}/{offset} but found at {found:?}",
                                op.value
                            ),
                        })
                    }
                    Some(_) => {}
                }
            }
            Outcome::Failed(_) | Outcome::Pending => {
                if matches!(op.outcome, Outcome::Failed(_)) {
                    report.failed += 1;
                } else {
                    report.pending += 1;
                }
                if places.get(op.value.as_str()).is_some_and(|f| f.len() == 1) {
                    report.unacked_present += 1;
                }
            }
        }
    }
    for seen in observed {
        match at.get(&(seen.partition, seen.offset)) {
            Some(value) if *value == seen.value => {}
            other => violations.push(Violation {
                kind: "phantom",
                detail: format!(
                    "a consumer saw {} at {}/{}, the final log has {:?} there",
                    seen.value, seen.partition, seen.offset, other
                ),
            }),
        }
    }
    report.violations = violations;
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(sequence: u64, partition: i32, outcome: Outcome) -> ProduceOp {
        ProduceOp {
            sequence,
            partition,
            value: format!("v-{sequence}"),
            sent_ms: sequence,
            done_ms: sequence + 1,
            outcome,
        }
    }

    fn acked(sequence: u64, partition: i32, offset: i64) -> ProduceOp {
        op(sequence, partition, Outcome::Acked { partition, offset })
    }

    fn log(entries: &[(i32, &[(i64, u64)])]) -> BTreeMap<i32, Vec<(i64, String)>> {
        entries
            .iter()
            .map(|(p, records)| {
                (
                    *p,
                    records
                        .iter()
                        .map(|(o, s)| (*o, format!("v-{s}")))
                        .collect(),
                )
            })
            .collect()
    }

    #[test]
    fn a_clean_history_passes() {
        let produced = vec![
            acked(0, 0, 0),
            acked(1, 1, 0),
            acked(2, 0, 1),
            op(3, 1, Outcome::Failed("timed out".into())),
            op(4, 1, Outcome::Pending),
        ];
        // The failed one landed (a timeout is not a refusal); the pending one did not.
        let final_log = log(&[(0, &[(0, 0), (1, 2)]), (1, &[(0, 1), (1, 3)])]);
        let observed = vec![Observation {
            partition: 0,
            offset: 1,
            value: "v-2".into(),
        }];
        let report = check(&produced, &observed, &final_log);
        assert!(report.is_clean(), "{}", report.render());
        assert_eq!((report.acked, report.failed, report.pending), (3, 1, 1));
        assert_eq!(report.unacked_present, 1);
    }

    #[test]
    fn loss_misplacement_and_duplicates_are_reported() {
        let produced = vec![
            acked(0, 0, 0),
            acked(1, 0, 1),
            acked(2, 0, 2),
            acked(3, 0, 3),
        ];
        // 1 lost, 2 moved to offset 1, 3 written twice.
        let final_log = log(&[(0, &[(0, 0), (1, 2), (2, 3), (3, 3)])]);
        let report = check(&produced, &[], &final_log);
        assert_eq!(report.count("lost"), 1, "{}", report.render());
        assert_eq!(report.count("misplaced"), 1);
        assert_eq!(report.count("duplicated"), 1);
        assert!(report.render().contains("verdict: VIOLATED"));
    }

    #[test]
    fn an_adjacent_duplicate_is_a_duplicate_not_a_reordering() {
        let produced = vec![acked(0, 0, 0), acked(1, 0, 1)];
        let final_log = log(&[(0, &[(0, 0), (1, 1), (2, 1)])]);
        let report = check(&produced, &[], &final_log);
        assert_eq!(report.count("duplicated"), 1, "{}", report.render());
        assert_eq!(report.count("reordered"), 0);
        assert!(!report.is_clean());
    }

    #[test]
    fn an_acknowledgement_without_an_offset_needs_only_its_partition() {
        let produced = vec![acked(0, 0, -1001), acked(1, 1, -1001)];
        let final_log = log(&[(0, &[(0, 0)]), (2, &[(0, 1)])]);
        let report = check(&produced, &[], &final_log);
        assert_eq!(report.count("misplaced"), 1, "{}", report.render());
        assert_eq!(report.count("lost"), 0);
    }

    #[test]
    fn a_truncated_record_a_consumer_saw_is_a_phantom() {
        let produced = vec![op(0, 0, Outcome::Pending), acked(1, 0, 0)];
        let final_log = log(&[(0, &[(0, 1)])]);
        let observed = vec![Observation {
            partition: 0,
            offset: 0,
            value: "v-0".into(),
        }];
        let report = check(&produced, &observed, &final_log);
        assert_eq!(report.count("phantom"), 1, "{}", report.render());
    }

    #[test]
    fn records_nobody_produced_are_strangers() {
        let final_log = log(&[(0, &[(0, 9)])]);
        let report = check(&[], &[], &final_log);
        assert_eq!(report.count("stranger"), 1);
    }
}
