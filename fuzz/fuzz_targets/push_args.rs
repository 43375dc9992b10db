//! The update hook's arguments `<ref> <old> <new>`, checked against the stdin parser.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use pushgate::push::{parse_updates, update_from_args};

#[derive(Debug, Arbitrary)]
struct Args {
    name: String,
    old: String,
    new: String,
}

fuzz_target!(|args: Args| {
    let from_args = update_from_args(&args.name, &args.old, &args.new);
    if let Ok(u) = &from_args {
        let again = update_from_args(&u.name, &u.old.to_string(), &u.new.to_string()).expect("re-printed args parse");
        assert_eq!(u, &again);
    }
    // The same update given on stdin is judged the same, when it fits on one line.
    let one_line = |s: &str| !s.contains('\n');
    if one_line(&args.name)
        && !args.old.contains(' ')
        && !args.new.contains(' ')
        && one_line(&args.old)
        && one_line(&args.new)
    {
        let line = format!("{} {} {}", args.old, args.new, args.name);
        let from_stdin = parse_updates(line.as_bytes());
        match (&from_args, &from_stdin) {
            (Ok(a), Ok(s)) => assert_eq!(std::slice::from_ref(a), s.as_slice()),
            (Err(_), Err(_)) => {}
            _ => panic!("args and stdin disagree on {line:?}: {from_args:?} vs {from_stdin:?}"),
        }
    }
});
