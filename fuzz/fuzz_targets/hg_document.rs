//! What pushgate's hg shim (`hooks-templates/pushgate_hg.py`) hands `pushgate hg pretxnclose`
//! on stdin, `pushgate.hg-push/1` JSON, arbitrary bytes: `hg::parse_document`, then
//! `hg::read_push`. Errors are fine (the hook refuses the push), panics not.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pushgate::hg::{parse_document, read_push};
use pushgate::push::{Action, check_ref_name};

fuzz_target!(|data: &[u8]| {
    let Ok(document) = parse_document(data) else { return };
    let _ = document.root.path();
    let _ = document.txn_id.lossy();
    let Ok(push) = read_push(&document) else { return };
    for change in &push.changes {
        let update = &change.update;
        assert!(check_ref_name(&update.name).is_ok(), "{:?} accepted", update.name);
        assert_eq!(update.old.is_null(), change.action == Action::Create, "{update:?} as {:?}", change.action);
        assert_eq!(update.new.is_null(), change.action == Action::Delete, "{update:?} as {:?}", change.action);
        if let Some(head) = &change.head {
            assert_eq!(head.id, update.new);
        }
    }
    let _ = format!("{push:?}");
});
