//! The field-level dry run tells the truth: what `Engine::preview` announces — actions,
//! fields, the value a conflict keeps — is what the sync then does, and the preview itself
//! changes nothing.

mod support;

use std::sync::Arc;

use deltasync_engine::planner::Change;
use deltasync_engine::progress::NoProgress;
use deltasync_engine::{Action, Decision, SideName};
use deltasync_remote::MemoryRemote;
use serde_json::json;
use support::Device;

#[test]
fn the_preview_announces_what_the_sync_does_and_changes_nothing() {
    let remote = Arc::new(MemoryRemote::with_seed(7));
    let mut a = Device::new(remote.clone(), "laptop");
    let mut b = Device::new(remote.clone(), "phone");
    a.write("t1", &json!({"title": "milk", "prio": 1, "done": false}));
    a.write("t2", &json!({"title": "eggs"}));
    a.sync();
    b.sync();
    a.write(
        "t1",
        &json!({"title": "oat milk", "prio": 2, "done": false}),
    );
    a.write("t3", &json!({"title": "bread"}));
    a.sync();
    std::thread::sleep(std::time::Duration::from_millis(20));
    b.write("t1", &json!({"title": "soy milk", "prio": 1, "done": true}));
    b.write("t2", &json!({"title": "eggs", "n": 3}));

    let p = b.engine.preview(&NoProgress).unwrap();
    let again = b.engine.preview(&NoProgress).unwrap();
    assert_eq!(p.entities, again.entities, "a preview changes nothing");
    assert_eq!(b.read("t3"), None, "nothing written locally");
    assert_eq!(p.refused, None);

    let actions: Vec<(&str, &Action)> = p
        .entities
        .iter()
        .map(|e| (e.id.as_str(), &e.action))
        .collect();
    assert_eq!(
        actions,
        vec![
            (
                "t1",
                &Action::Merge {
                    strategy: deltasync_engine::merge::Strategy::Merge
                }
            ),
            (
                "t2",
                &Action::Push {
                    change: Change::Update
                }
            ),
            (
                "t3",
                &Action::Pull {
                    change: Change::Create
                }
            ),
        ]
    );
    let t1 = &p.entities[0];
    let title = t1
        .fields
        .iter()
        .find(|f| f.path == ["title"])
        .expect("title");
    let Decision::Conflict {
        kept,
        kept_by,
        lost_by,
        kept_at_ms,
        lost_at_ms,
        ..
    } = &title.decision
    else {
        panic!("title: {:?}", title.decision);
    };
    assert_eq!(*kept, SideName::Local, "b's edit is the later one");
    assert_eq!(kept_by, b.engine.device_id());
    assert_eq!(lost_by, a.engine.device_id());
    assert!(kept_at_ms > lost_at_ms, "{kept_at_ms} > {lost_at_ms}");
    let decisions: Vec<(String, &Decision)> = t1
        .fields
        .iter()
        .map(|f| (f.path.join("."), &f.decision))
        .collect();
    assert_eq!(decisions[0], ("done".into(), &Decision::Push));
    assert_eq!(decisions[1], ("prio".into(), &Decision::Pull));

    // The sync does what was announced: the same receipt, the same merged content.
    let r = b.sync();
    assert_eq!(r.conflicts.len(), 1);
    assert_eq!(p.conflicts.len(), 1);
    let (announced, made) = (&p.conflicts[0], &r.conflicts[0]);
    assert_eq!(
        (&announced.field, &announced.kept, &announced.lost),
        (&made.field, &made.kept, &made.lost)
    );
    assert_eq!(made.kept_at.map(|h| h.ms), Some(*kept_at_ms));
    assert_eq!(made.lost_at.map(|h| h.ms), Some(*lost_at_ms));
    assert_eq!(
        b.read("t1"),
        Some(json!({"title": "soy milk", "prio": 2, "done": true}))
    );
    assert_eq!(b.read("t3"), Some(json!({"title": "bread"})));
    let names = b.engine.device_names().unwrap();
    assert_eq!(names[a.engine.device_id()], "laptop");
    assert_eq!(names[b.engine.device_id()], "phone");
}
