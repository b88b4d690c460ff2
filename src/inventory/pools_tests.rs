//! The pool rules of docs/inventory.md#pools, each refused at its position.

use std::path::Path;
use std::time::Duration;

use super::Budget;
use crate::inventory::{parse_str, Inventory, InventoryError};

const BASE: &str =
    "[ca.internal]\n[defaults]\ntransport = \"local\"\ntrust_bundle = \"{node}/ca.pem\"\n\
                    cert = \"{node}/cert.pem\"\nkey = \"{node}/key.pem\"\n";

fn load(rest: &str) -> Result<Inventory, InventoryError> {
    parse_str(&format!("{BASE}{rest}"), Path::new("/inv/certroll.toml"))
}

/// The error's line, column and text.
fn refused(rest: &str) -> (usize, usize, String) {
    match load(rest) {
        Err(InventoryError::Invalid {
            line,
            column,
            message,
            hint,
            ..
        }) => (
            line,
            column,
            format!("{message} / {}", hint.unwrap_or_default()),
        ),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

const THREE: &str = "[nodes.web1]\npool = \"web\"\n[nodes.web2]\npool = \"web\"\n[nodes.web3]\npool = \"web\"\n\
                     [[links]]\nclient = \"lb\"\nserver = [\"web1\", \"web2\", \"web3\"]\n[nodes.lb]\n";

#[test]
fn pools_load_with_their_defaults_and_members() {
    let inv = load(&format!("[pools.web]\n{THREE}")).unwrap();
    let pool = &inv.pools.pools[0];
    assert_eq!(pool.name, "web");
    assert_eq!(pool.max_unavailable, Budget::Count(1));
    assert_eq!(pool.min_healthy_time, Duration::ZERO);
    let names: Vec<&str> = pool
        .members
        .iter()
        .map(|&m| inv.nodes[m].name.as_str())
        .collect();
    assert_eq!(names, ["web1", "web2", "web3"]);
    assert_eq!(inv.pools.pool_of(inv.node_id("lb").unwrap()), None);
    assert_eq!(inv.pools.pool_of(inv.node_id("web2").unwrap()), Some(0));
    assert!(!inv.pools.restarts(0));
}

#[test]
fn pool_and_restarts_are_inherited_from_defaults() {
    let inv = load(
        "pool = \"kafka\"\nrestarts = true\nrestart_on_prune = false\n\
         [pools.kafka]\nmax_unavailable = \"50%\"\nmin_healthy_time = \"10s\"\n\
         windows = [\"Sat 02:00-05:00 UTC\"]\n[nodes.k1]\n[nodes.k2]\n",
    )
    .unwrap();
    let pool = &inv.pools.pools[0];
    assert_eq!(pool.members, [0, 1]);
    assert_eq!(pool.budget(), 1);
    assert_eq!(pool.min_healthy_time, Duration::from_secs(10));
    assert_eq!(pool.windows.len(), 1);
    assert!(inv.pools.restarts(1) && !inv.pools.restart_on_prune(1));
}

#[test]
fn an_unknown_pool_is_refused_with_a_suggestion() {
    let (line, column, text) = refused("[pools.web]\n[nodes.a]\npool = \"wbe\"\n");
    assert_eq!((line, column), (9, 8), "{text}");
    assert!(
        text.contains("node a names pool \"wbe\", which is not defined"),
        "{text}"
    );
    assert!(text.contains("did you mean \"web\"?"), "{text}");
}

#[test]
fn an_unknown_pool_from_defaults_points_at_defaults() {
    let (line, _, text) = refused("pool = \"nope\"\n[nodes.a]\n");
    assert_eq!(line, 7, "{text}");
    assert!(text.contains("no pool is defined"), "{text}");
}

#[test]
fn budgets_of_none_or_over_everything_are_refused() {
    for (value, why) in [
        ("0", "would let no member restart"),
        ("-1", "would let no member restart"),
        ("\"0%\"", "would let no member restart"),
        ("\"101%\"", "over 100%"),
        ("\"ten\"", "neither a count nor a percentage"),
        ("\"1.5%\"", "not a whole percentage"),
    ] {
        let (line, column, text) = refused(&format!("[pools.web]\nmax_unavailable = {value}\n"));
        assert_eq!((line, column), (8, 19), "{value}: {text}");
        assert!(text.contains(why), "{value}: {text}");
    }
}

#[test]
fn a_percentage_that_lets_no_member_restart_names_the_members() {
    let (line, _, text) = refused(&format!("[pools.web]\nmax_unavailable = \"10%\"\n{THREE}"));
    assert_eq!(line, 8, "{text}");
    assert!(
        text.contains("lets none of its 3 members (web1, web2, web3) restart"),
        "{text}"
    );
}

#[test]
fn a_healthy_time_longer_than_a_members_confirm_timeout_is_refused() {
    let (line, column, text) = refused(&format!(
        "[pools.web]\nmin_healthy_time = \"2m\"\n{THREE}confirm_timeout = \"90s\"\n"
    ));
    assert_eq!((line, column), (8, 20), "{text}");
    assert!(
        text.contains(
            "min_healthy_time 2m of pool web is longer than confirm_timeout 1m of its member web1"
        ),
        "{text}"
    );
}

#[test]
fn an_unreadable_window_is_refused_at_its_entry() {
    let (line, column, text) =
        refused("[pools.web]\nwindows = [\"Sat 02:00-05:00 UTC\", \"Sun 2-5\"]\n");
    assert_eq!((line, column), (8, 35), "{text}");
    assert!(
        text.contains("unreadable window \"Sun 2-5\" of pool web"),
        "{text}"
    );
}

#[test]
fn unknown_pool_keys_are_refused() {
    let (line, _, text) = refused("[pools.web]\nmax_unavialable = 2\n");
    assert_eq!(line, 8, "{text}");
    assert!(text.contains("unknown field `max_unavialable`"), "{text}");
}

#[test]
fn fleets_without_pools_have_empty_tables() {
    let inv = load("[nodes.a]\n[nodes.b]\n[[links]]\nclient = \"a\"\nserver = \"b\"\n").unwrap();
    assert!(inv.pools.is_empty());
    assert!(inv.pools.restart_on_prune(0));
}
