//! The layering check every gateway's tests run: a module imports only from layers below its
//! own (or from its own layer without a circle), never from a higher one. Read from the
//! sources, so a new `use crate::connection::…` inside a gateway's commands fails its test.
//! Gateways call [`violations`] from `tests/layering.rs` with their own layer table.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// The layering rule's violations in the crate whose sources are under `src` (its top-level
/// modules' `layers`, as its `lib.rs` states them). Panics on a module missing from `layers`.
pub fn violations(src: &Path, layers: &[(&str, u8)]) -> Vec<String> {
    let layer = |module: &str| {
        layers
            .iter()
            .find(|(name, _)| *name == module)
            .map(|(_, layer)| *layer)
            .unwrap_or_else(|| {
                panic!("module `{module}` has no layer: add it to lib.rs's table and the test's")
            })
    };
    let mut files = Vec::new();
    sources(src, None, &mut files);
    assert!(files.len() >= layers.len(), "every module's source is read");
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut violations = Vec::new();
    for (module, source) in &files {
        for imported in crate_imports(source) {
            if &imported == module {
                continue;
            }
            if layer(&imported) > layer(module) {
                violations.push(format!(
                    "{module} (layer {}) imports {imported} (layer {})",
                    layer(module),
                    layer(&imported)
                ));
            }
            edges.entry(module.clone()).or_default().insert(imported);
        }
    }
    for (from, targets) in &edges {
        for to in targets {
            if edges.get(to).is_some_and(|back| back.contains(from)) {
                violations.push(format!("{from} and {to} import each other"));
            }
        }
    }
    violations
}

/// The top-level modules a source file names through `crate::`, outside comments.
pub fn crate_imports(source: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let name_at = |text: &str| -> String {
        text.chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect()
    };
    for line in source.lines() {
        let code = line.trim_start();
        if code.starts_with("//") {
            continue;
        }
        let mut rest = code;
        while let Some(at) = rest.find("crate::") {
            rest = &rest[at + "crate::".len()..];
            let name = name_at(rest);
            if !name.is_empty() {
                found.insert(name);
            }
        }
        // `use crate::{a, b}` groups
        if let Some(at) = code.find("crate::{") {
            for item in code[at + "crate::{".len()..].split([',', '}']) {
                let name = name_at(item.trim());
                if !name.is_empty() {
                    found.insert(name);
                }
            }
        }
    }
    found
}

/// Every source file under `dir` with the top-level module it belongs to.
fn sources(dir: &Path, module: Option<&str>, out: &mut Vec<(String, String)>) {
    for entry in std::fs::read_dir(dir).expect("readable source dir") {
        let path = entry.expect("readable entry").path();
        let stem = path
            .file_stem()
            .unwrap_or_default()
            .to_string_lossy()
            .to_string();
        let owner = module.map(str::to_string).unwrap_or_else(|| stem.clone());
        if path.is_dir() {
            sources(&path, Some(&owner), out);
        } else if path.extension().is_some_and(|e| e == "rs")
            && !(module.is_none() && stem == "lib")
        {
            out.push((
                owner,
                std::fs::read_to_string(&path).expect("readable source"),
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_check_sees_imports_in_all_their_forms() {
        let source = "use crate::session::Session;\nuse crate::{error, out::Out};\n// crate::server in a comment\nlet x = crate::names::consumer_tag();";
        let expected: BTreeSet<String> = ["session", "error", "out", "names"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(crate_imports(source), expected);
    }
}
