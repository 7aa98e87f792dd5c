//! Property tests of the planner: over every combination of sides, what a plan may never do.

use super::*;
use proptest::prelude::{ProptestConfig, prop, prop_assert, prop_assert_eq, proptest};
use proptest::strategy::Strategy as _;

fn hash() -> impl proptest::strategy::Strategy<Value = Option<String>> {
    prop::option::of(prop::sample::select(vec!["h1", "h2", "h3"]).prop_map(str::to_string))
}

fn sides()
-> impl proptest::strategy::Strategy<Value = (LocalSide, Option<BaseSide>, Option<RemoteSide>)> {
    (
        (hash(), prop::bool::weighted(0.1)),
        prop::option::of((0u64..4, hash())),
        prop::option::of((0u64..4, hash())),
    )
        .prop_map(|((lh, unreadable), b, r)| {
            let base = b.map(|(version, hash)| BaseSide { version, hash });
            // Versions are unique: at the base's version the remote has the base's content.
            let remote = r.map(|(version, hash)| match &base {
                Some(b) if b.version == version => RemoteSide {
                    version,
                    hash: b.hash.clone(),
                },
                _ => RemoteSide { version, hash },
            });
            (
                LocalSide {
                    hash: lh,
                    unreadable,
                },
                base,
                remote,
            )
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn plans_never_clobber_an_unsynced_change((local, base, remote) in sides()) {
        let op = plan_entity(&local, base.as_ref(), remote.as_ref());
        let base_hash = base.as_ref().and_then(|b| b.hash.clone());
        let remote_hash = remote.as_ref().and_then(|r| r.hash.clone());
        if local.unreadable {
            prop_assert_eq!(op, Op::Hold);
        }
        match op {
            // A pull overwrites local: local must hold what was last synced.
            Op::Pull(_) => prop_assert_eq!(&local.hash, &base_hash),
            // A push overwrites the remote: the remote must not hold content we never saw.
            Op::Push(_) => prop_assert!(
                remote.is_none() && base.is_none()
                    || remote_hash == base_hash
                    || remote.as_ref().zip(base.as_ref()).is_some_and(|(r, b)| r.version <= b.version)
            ),
            Op::Hold => prop_assert!(local.unreadable),
            Op::Unchanged | Op::Merge | Op::Adopt => {}
        }
        // Sides that agree on content never move content (unless the remote went back
        // behind the base, which is not a remote change: local is pushed again).
        let remote_behind = remote
            .as_ref()
            .zip(base.as_ref())
            .is_some_and(|(r, b)| r.version < b.version);
        if !local.unreadable && local.hash == remote_hash && !remote_behind {
            prop_assert!(matches!(op, Op::Unchanged | Op::Adopt), "{op:?}");
        }
    }

    #[test]
    fn history_only_ever_turns_an_old_copy_into_a_pull(
        (local, base, remote) in sides(),
        earlier in prop::collection::btree_set(
            prop::sample::select(vec!["h1", "h2", "h3"]).prop_map(str::to_string),
            0..3,
        ),
    ) {
        let without = plan_entity(&local, base.as_ref(), remote.as_ref());
        let with = plan_entity_with_history(&local, base.as_ref(), remote.as_ref(), &earlier);
        if with != without {
            // Only without a base, only for content the remote had before, and only to
            // take the remote's newer record.
            prop_assert!(base.is_none());
            prop_assert!(local.hash.as_ref().is_some_and(|h| earlier.contains(h)));
            prop_assert!(matches!(with, Op::Pull(Change::Update | Change::Delete)), "{with:?}");
        }
    }
}
