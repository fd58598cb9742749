//! SCD Type 2 dimensions (SPEC §5): applying full reference snapshots, in ingestion order, to
//! a dimension's versions, and finding the version valid at a point in time (the surrogate
//! keys of `fact_sales`). Pure: the maintenance hop reads and writes the tables.

use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;

use serde::Serialize;

use super::records::{
    BronzeCustomer, BronzeProduct, BronzeStore, DimCustomer, DimProduct, DimStore,
};

/// One version of a dimension member: its surrogate key, natural id, tracked attributes and
/// validity interval `[valid_from, valid_to)` (open while current).
#[derive(Clone, Debug, PartialEq)]
pub struct Version<I, A> {
    pub key: i64,
    pub id: I,
    pub attributes: A,
    pub valid_from: i64,
    pub valid_to: Option<i64>,
}

impl<I, A> Version<I, A> {
    pub fn is_current(&self) -> bool {
        self.valid_to.is_none()
    }
}

/// Versions opened and closed by applying snapshots.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Changes {
    pub opened: usize,
    pub closed: usize,
}

impl Changes {
    pub fn is_empty(&self) -> bool {
        self.opened == 0 && self.closed == 0
    }
}

impl std::ops::AddAssign for Changes {
    fn add_assign(&mut self, other: Changes) {
        self.opened += other.opened;
        self.closed += other.closed;
    }
}

/// Applies one full snapshot, effective at `at` (its ingestion time): a new id opens a current
/// version; a changed attribute closes the current version at `at` and opens a successor; an
/// id missing from the snapshot is closed without one. Keys continue from the highest key ever
/// given, so they are never reused. A snapshot not later than the dimension's latest change
/// (the same snapshot again, or an older one) changes nothing. Within a snapshot, the last
/// row of an id wins.
pub fn apply_snapshot<I: Ord + Clone, A: PartialEq + Clone>(
    versions: &mut Vec<Version<I, A>>,
    snapshot: impl IntoIterator<Item = (I, A)>,
    at: i64,
) -> Changes {
    let latest_change = versions
        .iter()
        .map(|v| v.valid_to.unwrap_or(v.valid_from).max(v.valid_from))
        .max();
    if latest_change.is_some_and(|t| at <= t) {
        return Changes::default();
    }
    let snapshot: BTreeMap<I, A> = snapshot.into_iter().collect();
    let mut next_key = versions.iter().map(|v| v.key).max().unwrap_or(0) + 1;
    let mut changes = Changes::default();
    let mut still_current: BTreeMap<I, ()> = BTreeMap::new();
    let mut opened = Vec::new();
    for version in versions.iter_mut().filter(|v| v.is_current()) {
        match snapshot.get(&version.id) {
            Some(attributes) if *attributes == version.attributes => {
                still_current.insert(version.id.clone(), ());
            }
            successor => {
                version.valid_to = Some(at);
                changes.closed += 1;
                if let Some(attributes) = successor {
                    still_current.insert(version.id.clone(), ());
                    opened.push((version.id.clone(), attributes.clone()));
                }
            }
        }
    }
    for (id, attributes) in &snapshot {
        if !still_current.contains_key(id) {
            opened.push((id.clone(), attributes.clone()));
        }
    }
    opened.sort_by(|a, b| a.0.cmp(&b.0));
    for (id, attributes) in opened {
        versions.push(Version {
            key: next_key,
            id,
            attributes,
            valid_from: at,
            valid_to: None,
        });
        next_key += 1;
        changes.opened += 1;
    }
    versions.sort_by_key(|v| v.key);
    changes
}

/// Surrogate keys by natural id and time: the version valid at an instant, where a member's
/// first version also covers every earlier instant (an event that happened before its store,
/// product or customer reached a reference snapshot still resolves).
#[derive(Clone, Debug, Default)]
pub struct KeyIndex<I> {
    /// Per id, its versions as (valid_from, valid_to, key), oldest first.
    by_id: HashMap<I, Vec<(i64, Option<i64>, i64)>>,
}

impl<I: Hash + Eq + Clone> KeyIndex<I> {
    pub fn new<A>(versions: &[Version<I, A>]) -> Self {
        let mut by_id: HashMap<I, Vec<(i64, Option<i64>, i64)>> = HashMap::new();
        for v in versions {
            by_id
                .entry(v.id.clone())
                .or_default()
                .push((v.valid_from, v.valid_to, v.key));
        }
        for versions in by_id.values_mut() {
            versions.sort_unstable();
        }
        KeyIndex { by_id }
    }

    /// The key of the version of `id` valid at `at` (`valid_from ≤ at < valid_to`), or of its
    /// first version when `at` is earlier than that; `None` for an id without versions, or in a
    /// gap after the id left a snapshot.
    pub fn key_at(&self, id: &I, at: i64) -> Option<i64> {
        let versions = self.by_id.get(id)?;
        let &(first_from, _, first_key) = versions.first()?;
        if at < first_from {
            return Some(first_key);
        }
        versions
            .iter()
            .find_map(|&(from, to, key)| (from <= at && to.is_none_or(|to| at < to)).then_some(key))
    }

    /// The dimension's latest change: the greatest time a version opened or closed
    /// (`i64::MIN` without versions). Changes only move it forward.
    pub fn as_of(&self) -> i64 {
        self.changes().max().unwrap_or(i64::MIN)
    }

    /// What changed after `since`: the earliest time a version opened or closed (keys of
    /// events from then on may move), and whether a member first appeared (its earlier events,
    /// unkeyed until now, take its first version).
    pub fn changes_since(&self, since: i64) -> (Option<i64>, bool) {
        let earliest = self.changes().filter(|t| *t > since).min();
        let new_member = self
            .by_id
            .values()
            .any(|versions| versions.first().is_some_and(|(from, _, _)| *from > since));
        (earliest, new_member)
    }

    fn changes(&self) -> impl Iterator<Item = i64> + '_ {
        self.by_id
            .values()
            .flatten()
            .flat_map(|&(from, to, _)| std::iter::once(from).chain(to))
    }
}

/// The surrogate keys `fact_sales` looks up.
#[derive(Clone, Debug, Default)]
pub struct SurrogateKeys {
    pub stores: KeyIndex<i32>,
    pub products: KeyIndex<i32>,
    pub customers: KeyIndex<String>,
}

impl SurrogateKeys {
    /// Each dimension's latest change (store, product, customer): the state keys looked up
    /// here reflect.
    pub fn as_of(&self) -> [i64; 3] {
        [
            self.stores.as_of(),
            self.products.as_of(),
            self.customers.as_of(),
        ]
    }

    /// What changed in the dimensions after the state `since` (see [`KeyIndex::changes_since`]):
    /// the earliest change of any, and per dimension whether a member first appeared.
    pub fn changes_since(&self, since: [i64; 3]) -> (Option<i64>, [bool; 3]) {
        let changes = [
            self.stores.changes_since(since[0]),
            self.products.changes_since(since[1]),
            self.customers.changes_since(since[2]),
        ];
        (
            changes.iter().filter_map(|(earliest, _)| *earliest).min(),
            changes.map(|(_, new_member)| new_member),
        )
    }
}

/// A dimension table's row type, seen as a [`Version`], and the reference row it is built from.
pub trait Dimension: Sized {
    type Id: Ord + Hash + Clone;
    type Attributes: PartialEq + Clone;
    type Reference;
    fn entry(reference: &Self::Reference) -> (Self::Id, Self::Attributes);
    fn into_version(self) -> Version<Self::Id, Self::Attributes>;
    fn from_version(version: Version<Self::Id, Self::Attributes>) -> Self;
}

type StoreAttributes = [Option<String>; 6];

impl Dimension for DimStore {
    type Id = i32;
    type Attributes = StoreAttributes;
    type Reference = BronzeStore;
    fn entry(s: &BronzeStore) -> (i32, StoreAttributes) {
        let attributes = [
            s.name.clone(),
            s.city.clone(),
            s.region.clone(),
            s.opening_hour.clone(),
            s.closing_hour.clone(),
            s.manager.clone(),
        ];
        (s.store_id, attributes)
    }
    fn into_version(self) -> Version<i32, StoreAttributes> {
        Version {
            key: self.store_key,
            id: self.store_id,
            attributes: [
                self.name,
                self.city,
                self.region,
                self.opening_hour,
                self.closing_hour,
                self.manager,
            ],
            valid_from: self.valid_from,
            valid_to: self.valid_to,
        }
    }
    fn from_version(v: Version<i32, StoreAttributes>) -> Self {
        let is_current = v.is_current();
        let [name, city, region, opening_hour, closing_hour, manager] = v.attributes;
        DimStore {
            store_key: v.key,
            store_id: v.id,
            name,
            city,
            region,
            opening_hour,
            closing_hour,
            manager,
            valid_from: v.valid_from,
            valid_to: v.valid_to,
            is_current,
        }
    }
}

type ProductAttributes = (Option<String>, Option<String>, Option<super::money::Money>);

impl Dimension for DimProduct {
    type Id = i32;
    type Attributes = ProductAttributes;
    type Reference = BronzeProduct;
    fn entry(p: &BronzeProduct) -> (i32, ProductAttributes) {
        (
            p.product_id,
            (p.name.clone(), p.category.clone(), p.list_price),
        )
    }
    fn into_version(self) -> Version<i32, ProductAttributes> {
        Version {
            key: self.product_key,
            id: self.product_id,
            attributes: (self.name, self.category, self.list_price),
            valid_from: self.valid_from,
            valid_to: self.valid_to,
        }
    }
    fn from_version(v: Version<i32, ProductAttributes>) -> Self {
        let is_current = v.is_current();
        let (name, category, list_price) = v.attributes;
        DimProduct {
            product_key: v.key,
            product_id: v.id,
            name,
            category,
            list_price,
            valid_from: v.valid_from,
            valid_to: v.valid_to,
            is_current,
        }
    }
}

type CustomerAttributes = [Option<String>; 2];

impl Dimension for DimCustomer {
    type Id = String;
    type Attributes = CustomerAttributes;
    type Reference = BronzeCustomer;
    fn entry(c: &BronzeCustomer) -> (String, CustomerAttributes) {
        (
            c.customer_id.clone(),
            [c.loyalty_tier.clone(), c.city.clone()],
        )
    }
    fn into_version(self) -> Version<String, CustomerAttributes> {
        Version {
            key: self.customer_key,
            id: self.customer_id,
            attributes: [self.loyalty_tier, self.city],
            valid_from: self.valid_from,
            valid_to: self.valid_to,
        }
    }
    fn from_version(v: Version<String, CustomerAttributes>) -> Self {
        let is_current = v.is_current();
        let [loyalty_tier, city] = v.attributes;
        DimCustomer {
            customer_key: v.key,
            customer_id: v.id,
            loyalty_tier,
            city,
            valid_from: v.valid_from,
            valid_to: v.valid_to,
            is_current,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    use super::*;

    type V = Version<u8, u8>;

    fn snapshot(pairs: &[(u8, u8)]) -> Vec<(u8, u8)> {
        pairs.to_vec()
    }

    #[test]
    fn new_changed_and_gone_ids() {
        let mut dim: Vec<V> = Vec::new();
        let c = apply_snapshot(&mut dim, snapshot(&[(1, 10), (2, 20), (3, 30)]), 100);
        assert_eq!(
            c,
            Changes {
                opened: 3,
                closed: 0
            }
        );
        // 1 unchanged, 2 changed, 3 gone, 4 new.
        let c = apply_snapshot(&mut dim, snapshot(&[(1, 10), (2, 21), (4, 40)]), 200);
        assert_eq!(
            c,
            Changes {
                opened: 2,
                closed: 2
            }
        );
        let expect = vec![
            V {
                key: 1,
                id: 1,
                attributes: 10,
                valid_from: 100,
                valid_to: None,
            },
            V {
                key: 2,
                id: 2,
                attributes: 20,
                valid_from: 100,
                valid_to: Some(200),
            },
            V {
                key: 3,
                id: 3,
                attributes: 30,
                valid_from: 100,
                valid_to: Some(200),
            },
            V {
                key: 4,
                id: 2,
                attributes: 21,
                valid_from: 200,
                valid_to: None,
            },
            V {
                key: 5,
                id: 4,
                attributes: 40,
                valid_from: 200,
                valid_to: None,
            },
        ];
        assert_eq!(dim, expect);
        // The same snapshot again, or an older one, changes nothing.
        assert!(apply_snapshot(&mut dim, snapshot(&[(1, 10), (2, 21), (4, 40)]), 200).is_empty());
        assert!(apply_snapshot(&mut dim, snapshot(&[(9, 9)]), 150).is_empty());
        assert_eq!(dim, expect);
        // A gone id that comes back gets a new version and key.
        let c = apply_snapshot(
            &mut dim,
            snapshot(&[(1, 10), (2, 21), (3, 30), (4, 40)]),
            300,
        );
        assert_eq!(
            c,
            Changes {
                opened: 1,
                closed: 0
            }
        );
        assert_eq!(
            dim.last().map(|v| (v.key, v.id, v.valid_from)),
            Some((6, 3, 300))
        );

        let keys = KeyIndex::new(&dim);
        // The first version covers every earlier instant; a gap after leaving stays unkeyed.
        assert_eq!(keys.key_at(&2, 99), Some(2));
        assert_eq!(keys.key_at(&2, i64::MIN), Some(2));
        assert_eq!(keys.key_at(&2, 100), Some(2));
        assert_eq!(keys.key_at(&2, 199), Some(2));
        assert_eq!(keys.key_at(&2, 200), Some(4));
        assert_eq!(keys.key_at(&3, 250), None);
        assert_eq!(keys.key_at(&3, 300), Some(6));
        assert_eq!(keys.key_at(&7, 300), None);
        // Changes since an instant: the earliest after it, and whether an id first appeared.
        assert_eq!(keys.as_of(), 300);
        assert_eq!(keys.changes_since(99), (Some(100), true));
        assert_eq!(keys.changes_since(100), (Some(200), true)); // 2 changed, 3 left, 4 new
        assert_eq!(keys.changes_since(250), (Some(300), false)); // 3 came back: not new
        assert_eq!(keys.changes_since(300), (None, false));
    }

    #[test]
    fn last_row_of_an_id_wins_within_a_snapshot() {
        let mut dim: Vec<V> = Vec::new();
        apply_snapshot(&mut dim, snapshot(&[(1, 10), (1, 11)]), 5);
        assert_eq!(dim.len(), 1);
        assert_eq!(dim[0].attributes, 11);
    }

    /// SPEC §5's invariants over random sequences of snapshots: at most one current version per
    /// id, versions of an id never overlap and chain without gaps while it stays present, keys
    /// unique and never reused, the current versions equal the last snapshot, reruns change
    /// nothing, and facts keep their keys when later snapshots arrive.
    #[test]
    fn invariants_hold_over_random_snapshot_sequences() {
        for seed in 0..500u64 {
            let mut rng = StdRng::seed_from_u64(seed);
            let mut dim: Vec<V> = Vec::new();
            let mut at = 0i64;
            let mut keys_ever: HashSet<i64> = HashSet::new();
            let mut probes: Vec<(u8, i64, Option<i64>)> = Vec::new();
            for _ in 0..rng.random_range(1..12) {
                at += rng.random_range(1..1_000);
                let size = rng.random_range(0..10);
                let snap: Vec<(u8, u8)> = (0..size)
                    .map(|_| (rng.random_range(0..12), rng.random_range(0..3)))
                    .collect();
                let before = dim.clone();
                apply_snapshot(&mut dim, snap.clone(), at);
                // Old versions are only ever closed, never changed or removed.
                for old in &before {
                    let now = dim.iter().find(|v| v.key == old.key).expect("kept");
                    assert_eq!(
                        (now.id, now.attributes, now.valid_from),
                        (old.id, old.attributes, old.valid_from)
                    );
                    if old.valid_to.is_some() {
                        assert_eq!(now.valid_to, old.valid_to);
                    }
                }
                for v in &dim {
                    if !before.iter().any(|b| b.key == v.key) {
                        assert!(keys_ever.insert(v.key), "seed {seed}: key {} reused", v.key);
                    }
                }
                // Rerun: nothing changes.
                let again = dim.clone();
                assert!(apply_snapshot(&mut dim, snap.clone(), at).is_empty());
                assert_eq!(dim, again);
                // Current versions are exactly the snapshot (last row of an id wins).
                let expected: BTreeMap<u8, u8> = snap.into_iter().collect();
                let current: BTreeMap<u8, u8> = dim
                    .iter()
                    .filter(|v| v.is_current())
                    .map(|v| (v.id, v.attributes))
                    .collect();
                assert_eq!(current, expected, "seed {seed}");
                assert_eq!(
                    dim.iter().filter(|v| v.is_current()).count(),
                    expected.len()
                );
                // Facts resolved earlier keep their keys; a known id resolves at every instant
                // before its first version.
                let index = KeyIndex::new(&dim);
                for &(id, t, key) in &probes {
                    if key.is_some() {
                        assert_eq!(
                            index.key_at(&id, t),
                            key,
                            "seed {seed}: key of {id} at {t} moved"
                        );
                    }
                }
                for id in 0..12 {
                    let first = dim
                        .iter()
                        .filter(|v| v.id == id)
                        .min_by_key(|v| v.valid_from);
                    if let Some(first) = first {
                        assert_eq!(index.key_at(&id, first.valid_from - 1), Some(first.key));
                    }
                }
                for id in 0..12 {
                    let t = at - rng.random_range(0..500);
                    probes.push((id, t, index.key_at(&id, t)));
                }
            }
            // Per id: intervals well-formed and disjoint.
            let mut by_id: BTreeMap<u8, Vec<&V>> = BTreeMap::new();
            for v in &dim {
                by_id.entry(v.id).or_default().push(v);
            }
            for versions in by_id.values_mut() {
                versions.sort_by_key(|v| v.valid_from);
                for pair in versions.windows(2) {
                    let end = pair[0].valid_to.expect("only the last can be open");
                    assert!(
                        pair[0].valid_from < end && end <= pair[1].valid_from,
                        "seed {seed}"
                    );
                }
            }
        }
    }
}
