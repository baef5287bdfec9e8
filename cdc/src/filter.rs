//! Subscription filters: tables, operations, transaction ids, a predicate, and a column mask for
//! JSON payloads so sensitive columns never leave.

use std::collections::BTreeSet;
use std::sync::Arc;

use bytes::Bytes;
use serde_json::Value;

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

    /// Applies the mask to a payload, which must be a JSON object: a payload the mask cannot be
    /// applied to is an error (it is never passed through unmasked).
    pub fn apply(&self, payload: &Bytes) -> Result<Bytes, String> {
        let value: Value =
            serde_json::from_slice(payload).map_err(|e| format!("column mask needs a JSON payload: {e}"))?;
        let Value::Object(mut map) = value else {
            return Err("column mask needs a JSON object payload".to_string());
        };
        match self {
            ColumnMask::Include(keep) => map.retain(|k, _| keep.contains(k)),
            ColumnMask::Exclude(drop) => map.retain(|k, _| !drop.contains(k)),
        }
        Ok(Bytes::from(serde_json::to_vec(&Value::Object(map)).expect("JSON object serialises")))
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
