//! Subscription filters: tables, operations, transaction ids, a predicate, and a column mask for
//! JSON payloads so sensitive columns never leave.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use bytes::Bytes;
use serde_json::value::RawValue;

use crate::event::{ChangeEvent, Operation};

/// A predicate over raw change events.
pub type Predicate = Arc<dyn Fn(&ChangeEvent) -> bool + Send + Sync>;

/// Which columns of JSON-object payloads a subscriber may see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ColumnMask {
    /// Only these top-level keys are kept (a projection).
    Include(BTreeSet<String>),
    /// These top-level keys are removed (a mask).
    Exclude(BTreeSet<String>),
}

impl ColumnMask {
    /// A projection onto `columns`.
    pub fn include<I: IntoIterator<Item = S>, S: Into<String>>(columns: I) -> ColumnMask {
        ColumnMask::Include(columns.into_iter().map(Into::into).collect())
    }

    /// A mask removing `columns`.
    pub fn exclude<I: IntoIterator<Item = S>, S: Into<String>>(columns: I) -> ColumnMask {
        ColumnMask::Exclude(columns.into_iter().map(Into::into).collect())
    }

    /// Whether the mask lets top-level key `column` through.
    pub fn keeps(&self, column: &str) -> bool {
        match self {
            ColumnMask::Include(keep) => keep.contains(column),
            ColumnMask::Exclude(drop) => !drop.contains(column),
        }
    }

    /// Applies the mask to a payload, which must be a JSON object: a payload the mask cannot be
    /// applied to is an error (it is never passed through unmasked).
    ///
    /// The columns kept leave exactly as they came: each value is copied as its raw JSON text,
    /// never parsed into numbers and printed again (which would turn integers beyond 64 bits
    /// into floats). The output is one compact object with its keys in sorted order; of
    /// duplicate keys, the last one counts (as when parsing the payload into a map).
    ///
    /// ```
    /// use bytes::Bytes;
    /// use walden_cdc::ColumnMask;
    ///
    /// let row = Bytes::from_static(br#"{"id": 123456789012345678901234567890, "ssn": "078-05-1120"}"#);
    /// let masked = ColumnMask::exclude(["ssn"]).apply(&row).unwrap();
    /// assert_eq!(&masked[..], br#"{"id":123456789012345678901234567890}"#);
    /// assert!(ColumnMask::include(["id"]).apply(&Bytes::from_static(b"id=1")).is_err());
    /// ```
    pub fn apply(&self, payload: &Bytes) -> Result<Bytes, String> {
        let columns: BTreeMap<String, &RawValue> = serde_json::from_slice(payload).map_err(|e| {
            if serde_json::from_slice::<serde::de::IgnoredAny>(payload).is_ok() {
                "column mask needs a JSON object payload".to_string()
            } else {
                format!("column mask needs a JSON payload: {e}")
            }
        })?;
        let kept: BTreeMap<&str, &RawValue> =
            columns.iter().filter(|(k, _)| self.keeps(k)).map(|(k, v)| (k.as_str(), *v)).collect();
        Ok(Bytes::from(serde_json::to_vec(&kept).expect("a map of strings to JSON values serialises")))
    }
}

/// What a subscription lets through. Empty (default) lets everything through. Sets are
/// conjunctive: an event must match every criterion that is set.
#[derive(Clone, Default)]
pub struct Filter {
    /// Only these tables (row and schema changes).
    pub tables: Option<BTreeSet<String>>,
    /// Only these row operations.
    pub operations: Option<BTreeSet<Operation>>,
    /// Only these transactions.
    pub txn_ids: Option<BTreeSet<u64>>,
    /// Only row changes for which this returns true (evaluated after the other criteria, on the
    /// unmasked event).
    pub predicate: Option<Predicate>,
    /// Column projection or mask for JSON payloads (`data` and `old_data`).
    pub columns: Option<ColumnMask>,
}

impl std::fmt::Debug for Filter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Filter")
            .field("tables", &self.tables)
            .field("operations", &self.operations)
            .field("txn_ids", &self.txn_ids)
            .field("predicate", &self.predicate.as_ref().map(|_| "<fn>"))
            .field("columns", &self.columns)
            .finish()
    }
}

impl Filter {
    /// Lets everything through.
    pub fn all() -> Filter {
        Filter::default()
    }

    /// Only `tables`.
    pub fn tables<I: IntoIterator<Item = S>, S: Into<String>>(mut self, tables: I) -> Filter {
        self.tables = Some(tables.into_iter().map(Into::into).collect());
        self
    }

    /// Only `operations`.
    pub fn operations<I: IntoIterator<Item = Operation>>(mut self, operations: I) -> Filter {
        self.operations = Some(operations.into_iter().collect());
        self
    }

    /// Only transactions `txn_ids`.
    pub fn txn_ids<I: IntoIterator<Item = u64>>(mut self, txn_ids: I) -> Filter {
        self.txn_ids = Some(txn_ids.into_iter().collect());
        self
    }

    /// Only changes for which `predicate` holds.
    pub fn predicate(mut self, predicate: impl Fn(&ChangeEvent) -> bool + Send + Sync + 'static) -> Filter {
        self.predicate = Some(Arc::new(predicate));
        self
    }

    /// Apply a column mask.
    pub fn columns(mut self, mask: ColumnMask) -> Filter {
        self.columns = Some(mask);
        self
    }

    /// Narrows this filter by another (intersection of sets; both predicates must hold; the
    /// other's column mask wins if both have one).
    pub fn and(mut self, other: &Filter) -> Filter {
        fn meet<T: Ord + Clone>(a: Option<BTreeSet<T>>, b: &Option<BTreeSet<T>>) -> Option<BTreeSet<T>> {
            match (a, b) {
                (None, None) => None,
                (Some(a), None) => Some(a),
                (None, Some(b)) => Some(b.clone()),
                (Some(a), Some(b)) => Some(a.intersection(b).cloned().collect()),
            }
        }
        self.tables = meet(self.tables, &other.tables);
        self.operations = meet(self.operations, &other.operations);
        self.txn_ids = meet(self.txn_ids, &other.txn_ids);
        self.predicate = match (self.predicate.take(), other.predicate.clone()) {
            (Some(a), Some(b)) => Some(Arc::new(move |e: &ChangeEvent| a(e) && b(e))),
            (a, b) => a.or(b),
        };
        if other.columns.is_some() {
            self.columns = other.columns.clone();
        }
        self
    }

    /// Whether a table passes the table filter.
    pub fn matches_table(&self, table: &str) -> bool {
        self.tables.as_ref().is_none_or(|t| t.contains(table))
    }

    /// Whether a transaction passes the transaction filter.
    pub fn matches_txn(&self, txn_id: u64) -> bool {
        self.txn_ids.as_ref().is_none_or(|t| t.contains(&txn_id))
    }

    /// Whether a row change passes every criterion (before masking).
    pub fn matches_change(&self, event: &ChangeEvent) -> bool {
        self.matches_table(&event.table)
            && self.operations.as_ref().is_none_or(|o| o.contains(&event.op))
            && self.matches_txn(event.txn.txn_id)
            && self.predicate.as_ref().is_none_or(|p| p(event))
    }

    /// Applies the column mask (if any) to an event's payloads.
    pub fn mask(&self, mut event: ChangeEvent) -> Result<ChangeEvent, String> {
        if let Some(mask) = &self.columns {
            event.data = event.data.map(|d| mask.apply(&d)).transpose()?;
            event.old_data = event.old_data.map(|d| mask.apply(&d)).transpose()?;
        }
        Ok(event)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mask_include_exclude_and_reject_non_json() {
        let row = Bytes::from_static(br#"{"id":1,"email":"a@b","ssn":"123"}"#);
        let kept = ColumnMask::include(["id"]).apply(&row).unwrap();
        assert_eq!(&kept[..], br#"{"id":1}"#);
        let masked = ColumnMask::exclude(["ssn", "email"]).apply(&row).unwrap();
        assert_eq!(&masked[..], br#"{"id":1}"#);
        assert!(ColumnMask::exclude(["ssn"]).apply(&Bytes::from_static(b"ssn=123")).is_err());
        assert!(ColumnMask::exclude(["ssn"]).apply(&Bytes::from_static(b"[1,2]")).is_err());
        assert!(ColumnMask::exclude(["ssn"]).apply(&Bytes::from_static(br#"{"ssn":1} {}"#)).is_err());
    }

    /// Regression: the mask used to parse the payload into `serde_json::Value` and print it
    /// again, so the columns it kept came out changed: integers beyond 64 bits became floats
    /// (`123456789012345678901234567890` → `1.2345678901234568e29`).
    #[test]
    fn kept_columns_leave_byte_for_byte() {
        let row = Bytes::from_static(
            br#"{"big":123456789012345678901234567890,"neg":-98765432109876543210,"f":2.638344616030823e-256,"tiny":5e-324,"s":"\u00e9\ud83d\ude00","nested":{"b":1, "a":[1.50, 2]},"ssn":"x"}"#,
        );
        let masked = ColumnMask::exclude(["ssn"]).apply(&row).unwrap();
        assert_eq!(
            std::str::from_utf8(&masked).unwrap(),
            r#"{"big":123456789012345678901234567890,"f":2.638344616030823e-256,"neg":-98765432109876543210,"nested":{"b":1, "a":[1.50, 2]},"s":"\u00e9\ud83d\ude00","tiny":5e-324}"#
        );
        // Duplicate keys: the last one counts, as when parsing into a map.
        let dup = Bytes::from_static(br#"{"a":1,"ssn":2,"a":3}"#);
        assert_eq!(&ColumnMask::exclude(["ssn"]).apply(&dup).unwrap()[..], br#"{"a":3}"#);
    }

    #[test]
    fn and_intersects() {
        let a = Filter::all().tables(["a", "b"]).operations([Operation::Insert, Operation::Update]);
        let b = Filter::all().tables(["b", "c"]).operations([Operation::Update]);
        let f = a.and(&b);
        assert_eq!(f.tables.unwrap().into_iter().collect::<Vec<_>>(), vec!["b"]);
        assert_eq!(f.operations.unwrap().into_iter().collect::<Vec<_>>(), vec![Operation::Update]);
    }
}
