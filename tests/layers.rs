//! The layer order of `src/lib.rs`: a module never imports from a layer
//! above its own. Every `crate::NAME` path in a source file (in `use` lines,
//! grouped `use crate::{a, b}` forms and inline paths) is checked against the
//! layer of the file's top-level module.

use std::path::Path;

/// Layers, lowest first. Modules on one line share a layer and may use each
/// other. `Error` and `Result` are the crate root's re-exports of `error`.
const LAYERS: &[&[&str]] = &[
    &["util"],
    &["format"],
    &["error", "output", "Error", "Result"],
    &["fs"],
    &["rom"],
    &["apk", "apps"],
    &["debloat"],
    &["manifest"],
    &["package"],
    &["build", "fixture"],
    &["cli"],
    &["lib", "main"],
];

fn layer(name: &str) -> Option<usize> {
    LAYERS.iter().position(|l| l.contains(&name))
}

/// The top-level module of a file, from its path under `src/`.
fn module_of(rel: &str) -> &str {
    let first = rel.split('/').next().unwrap_or(rel);
    first.strip_suffix(".rs").unwrap_or(first)
}

fn ident_at(s: &str) -> &str {
    let end = s
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(s.len());
    &s[..end]
}

/// The first names of the items of a grouped `use` starting after its `{`:
/// `a::b, c::{d, e}, f}` gives a, c, f (each with its offset in `s`).
/// Returns them and the length read.
fn group_names(s: &str) -> (Vec<(usize, &str)>, usize) {
    let mut names = Vec::new();
    let mut depth = 0usize;
    let mut start_item = true;
    for (i, c) in s.char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => return (names, i),
            '}' => depth -= 1,
            ',' if depth == 0 => start_item = true,
            c if start_item && (c.is_ascii_alphanumeric() || c == '_') => {
                let name = ident_at(&s[i..]);
                if name != "self" {
                    names.push((i, name));
                }
                start_item = false;
            }
            _ => {}
        }
    }
    (names, s.len())
}

/// Every `crate::NAME` in `text`, with its 1-based line, outside `//`
/// comments (doc links name modules without depending on them).
fn crate_paths(text: &str) -> Vec<(usize, String)> {
    // Comment lines are blanked so that line numbers stay right.
    let code: String = text
        .lines()
        .map(|l| {
            if l.trim_start().starts_with("//") {
                ""
            } else {
                l
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    let line_of = |pos: usize| code[..pos].matches('\n').count() + 1;
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(k) = code[from..].find("crate::") {
        let at = from + k;
        from = at + "crate::".len();
        // Not part of a longer identifier (`$crate::`, `mycrate::`).
        if code[..at]
            .chars()
            .next_back()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$')
        {
            continue;
        }
        let rest = &code[from..];
        if let Some(group) = rest.strip_prefix('{') {
            let (names, len) = group_names(group);
            for (i, n) in names {
                out.push((line_of(from + 1 + i), n.to_string()));
            }
            from += 1 + len;
        } else {
            let n = ident_at(rest);
            if !n.is_empty() {
                out.push((line_of(at), n.to_string()));
            }
        }
    }
    out
}

/// The violations in a set of files (path under `src/`, text).
fn check(files: &[(String, String)]) -> Vec<String> {
    let mut bad = Vec::new();
    for (rel, text) in files {
        let module = module_of(rel);
        let Some(own) = layer(module) else {
            bad.push(format!(
                "src/{rel}: top-level module `{module}` has no layer; add it to LAYERS in tests/layers.rs and to the order in src/lib.rs"
            ));
            continue;
        };
        for (line, name) in crate_paths(text) {
            match layer(&name) {
                None => bad.push(format!(
                    "src/{rel}:{line}: crate::{name} names a module with no layer"
                )),
                Some(l) if l > own => bad.push(format!(
                    "src/{rel}:{line}: `{module}` imports crate::{name} from a layer above it"
                )),
                Some(_) => {}
            }
        }
    }
    bad
}

fn collect(dir: &Path, root: &Path, out: &mut Vec<(String, String)>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            collect(&p, root, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            let rel = p
                .strip_prefix(root)
                .expect("under src")
                .to_string_lossy()
                .into_owned();
            let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{rel}: {e}"));
            out.push((rel, text));
        }
    }
}

#[test]
fn no_module_imports_from_a_layer_above() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    collect(&src, &src, &mut files);
    assert!(files.len() > 20, "found only {} source files", files.len());
    let bad = check(&files);
    assert!(
        bad.is_empty(),
        "{} upward or unplaced imports:\n{}",
        bad.len(),
        bad.join("\n")
    );
}

#[test]
fn the_checker_reports_upward_and_unknown_imports() {
    let files = vec![
        (
            "format/x.rs".to_string(),
            "//! Uses [`crate::output`] in a doc link only.\n\
             use crate::util::hex;\n\
             use crate::{\n    format::sparse,\n    rom::{Rom, images},\n};\n\
             fn f() -> crate::Result<()> { let _ = crate::cli::run; Ok(()) }\n"
                .to_string(),
        ),
        (
            "cli/y.rs".to_string(),
            "use crate::{rom::Rom, build};\nuse crate::nowhere::Thing;\n".to_string(),
        ),
        (
            "newmod/z.rs".to_string(),
            "use crate::util::hex;\n".to_string(),
        ),
    ];
    let bad = check(&files);
    assert_eq!(bad.len(), 5, "{bad:#?}");
    assert!(bad[0].starts_with("src/format/x.rs:5:") && bad[0].contains("crate::rom"));
    assert!(bad[1].starts_with("src/format/x.rs:7:") && bad[1].contains("crate::Result"));
    assert!(bad[2].starts_with("src/format/x.rs:7:") && bad[2].contains("crate::cli"));
    assert!(bad[3].starts_with("src/cli/y.rs:2:") && bad[3].contains("no layer"));
    assert!(bad[4].contains("`newmod` has no layer"));
}

#[test]
fn paths_are_found_in_every_form() {
    let names: Vec<String> = crate_paths(
        "use crate::a::b;\nuse crate::{c, d::{e, f}, self};\nlet x = crate::g::h(); $crate::i; notcrate::j;\n",
    )
    .into_iter()
    .map(|(line, n)| format!("{line}:{n}"))
    .collect();
    assert_eq!(names, ["1:a", "2:c", "2:d", "3:g"]);
}
