//! Slice-by-slice parsing gives exactly the whole-file result, or declines.

use super::*;

/// A fleet file like the generator's: settings, `[nodes.X]` tables, then `[[links]]`.
fn fleet(nodes: usize, links: usize) -> String {
    let mut t = String::from(
        "[certroll]\nstate_dir = \"st\"\n\n[ca.internal]\nsubject = \"CN=I\"\n\n[defaults]\nssh = { user = \"u\" }\n\n",
    );
    for i in 0..nodes {
        t.push_str(&format!(
            "[nodes.n-{i:04}]\nssh = {{ host = \"127.0.0.1\", port = {} }}\n\n",
            2000 + i
        ));
    }
    for i in 0..links {
        t.push_str(&format!(
            "[[links]]\nclient = \"n-{:04}\"\nserver = [\"n-{:04}\", \"n-{:04}\"]\nmutual = {}\n\n",
            i % nodes,
            (i * 7 + 1) % nodes,
            (i * 3 + 2) % nodes,
            i % 2 == 0
        ));
    }
    t
}

/// The whole-file parse, with nodes sorted (validation sorts them; the order is not meaning).
fn whole(text: &str) -> String {
    let mut raw: RawInventory = toml::from_str(text).expect("whole file parses");
    raw.nodes.0.sort_by(|a, b| a.0.cmp(&b.0));
    format!("{raw:?}")
}

fn sliced(text: &str, chunk: usize) -> Option<String> {
    let mut raw = parse_in(text, chunk)?;
    raw.nodes.0.sort_by(|a, b| a.0.cmp(&b.0));
    Some(format!("{raw:?}"))
}

#[test]
fn slices_give_the_whole_file_result() {
    let text = fleet(200, 600);
    let splits = split_points(&text, 2048).expect("a fleet file splits");
    assert!(splits.len() > 10, "only {} splits", splits.len());
    for &s in &splits {
        let line = text[s..].lines().next().unwrap();
        assert!(
            line == "[[links]]" || line.starts_with("[nodes."),
            "split at {line:?}"
        );
    }
    assert_eq!(sliced(&text, 2048).as_deref(), Some(whole(&text).as_str()));
}

#[test]
fn small_files_are_parsed_whole() {
    assert!(split_points(&fleet(5, 5), CHUNK_BYTES).is_none());
}

#[test]
fn duplicate_nodes_across_slices_are_left_to_the_whole_parse() {
    let mut text = fleet(200, 0);
    text.push_str("[nodes.n-0001]\nvia = \"n-0002\"\n");
    assert!(split_points(&text, 2048).is_some());
    assert!(parse_in(&text, 2048).is_none());
    assert!(toml::from_str::<RawInventory>(&text).is_err());
}

#[test]
fn a_later_other_header_disables_slicing() {
    let mut text = fleet(200, 100);
    text.push_str("[nodes.n-0001.ssh]\nport = 1\n");
    assert!(split_points(&text, 2048).is_none());
    let mut text = fleet(200, 100);
    text.push_str("[certroll]\n");
    assert!(split_points(&text, 2048).is_none());
}

#[test]
fn root_keys_naming_nodes_or_links_disable_slicing() {
    for root in [
        "links = []\n",
        "nodes = {}\n",
        "\"links\" = 1\n",
        "'x' = 1\n",
    ] {
        let text = format!("{root}{}", fleet(200, 100));
        assert!(split_points(&text, 2048).is_none(), "{root}");
        assert!(parse_in(&text, 2048).is_none(), "{root}");
    }
}

#[test]
fn a_static_links_array_fails_in_the_first_slice() {
    // `links` made static by a table before the first [[links]]: the first slice holds
    // both, so it fails as the whole file does.
    let text = format!("[certroll]\n{}", fleet(200, 100)).replacen(
        "[defaults]",
        "[links]\nclient = \"a\"\n\n[defaults]",
        1,
    );
    assert!(parse_in(&text, 2048).is_none());
    assert!(toml::from_str::<RawInventory>(&text).is_err());
}

#[test]
fn a_header_inside_a_multiline_string_is_not_a_split() {
    let mut text = fleet(200, 0);
    let hidden: String = (0..100)
        .map(|i| format!("[nodes.fake-{i}]\nx = 1\n"))
        .collect();
    text.push_str(&format!("[nodes.z]\nreload = \"\"\"\n{hidden}\"\"\"\n\n"));
    text.push_str(
        &fleet(200, 100)
            .replace("[nodes.n-", "[nodes.m-")
            .split_once("[nodes.m-")
            .map(|(_, t)| format!("[nodes.m-{t}"))
            .unwrap(),
    );
    let splits = split_points(&text, 512).expect("splits are proposed");
    assert!(splits
        .iter()
        .any(|&s| text[s..].starts_with("[nodes.fake-")));
    // The slice before such a split ends inside the string, so the whole parse decides.
    assert!(parse_in(&text, 512).is_none());
    let raw: RawInventory = toml::from_str(&text).expect("the file itself is valid");
    assert!(raw
        .nodes
        .0
        .iter()
        .any(|(n, r)| n == "z" && r.reload.as_deref().unwrap().contains("[nodes.fake-3]")));
}

#[test]
fn classify_accepts_only_exact_headers() {
    assert_eq!(classify("[[links]]"), Header::Link);
    assert_eq!(classify("[[links]]\r"), Header::Link);
    assert_eq!(classify("[nodes.app-01_x]"), Header::Node);
    for other in [
        "[[links]] # c",
        "[nodes.a.b]",
        "[nodes.\"a\"]",
        "[nodes]",
        "[ nodes.a ]",
        "[links]",
        "[[nodes]]",
    ] {
        assert_eq!(classify(other), Header::Other, "{other}");
    }
}

#[test]
fn generated_fleets_take_the_sliced_path() {
    // A fleet file of a few MB, shaped like scripts/gen-inventory.py's, must be sliced
    // (otherwise a 100,000-node file peaks at over 1 GB again) and mean the same.
    let text = fleet(9000, 30000);
    assert!(text.len() > 2 * CHUNK_BYTES, "{} bytes", text.len());
    let splits = split_points(&text, CHUNK_BYTES).expect("a fleet file splits");
    assert!(splits.len() >= 2, "{splits:?}");
    let mut raw = parse(&text).expect("every slice parses");
    assert_eq!((raw.nodes.0.len(), raw.links.len()), (9000, 30000));
    raw.nodes.0.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(format!("{raw:?}"), whole(&text));
}
