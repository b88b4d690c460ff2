//! Source comments point at the design of record, docs/design.md, by its anchors (they used
//! to cite sections of a design brief that is not in the repository). Every
//! `docs/design.md#anchor` under src/ must name an `id` docs/design.md defines, and no
//! `DESIGN §N` reference is left.

use std::path::{Path, PathBuf};

const REPO: &str = env!("CARGO_MANIFEST_DIR");

/// Every `.rs` file under `dir`.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).expect("list a source directory") {
            let p = e.expect("entry").path();
            if p.is_dir() {
                todo.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }
    out
}

#[test]
fn design_references_in_src_name_sections_of_docs_design() {
    let design = std::fs::read_to_string(Path::new(REPO).join("docs/design.md"))
        .expect("read docs/design.md");
    let mut checked = 0;
    for file in rust_files(&Path::new(REPO).join("src")) {
        let text = std::fs::read_to_string(&file).expect("read a source file");
        assert!(
            !text.contains("DESIGN §"),
            "{} still cites a section of a design brief that is not in the repository",
            file.display()
        );
        for (at, _) in text.match_indices("docs/design.md#") {
            let anchor: String = text[at + "docs/design.md#".len()..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
                .collect();
            assert!(
                design.contains(&format!("id=\"{anchor}\"")),
                "{} points at docs/design.md#{anchor}, which docs/design.md does not define",
                file.display()
            );
            checked += 1;
        }
    }
    assert!(
        checked >= 10,
        "only {checked} references found: is src/ there?"
    );
}
