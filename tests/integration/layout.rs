//! The source tree keeps its shape: no module imports one that imports it back (file by file, and
//! between the top-level modules of each crate), and no source file is over 600 lines before its
//! tests. Run alone with `cargo test --test integration layout`.
//!
//! Imports are read from the code: every `use` and every path starting with `crate::`, `super::`,
//! `self::` or (from the binary) `catchup::` outside `#[cfg(test)]` items, resolved to the file of
//! the longest module prefix. A `mod` declaration is not an import.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use crate::root;

/// One crate: its root file and the module path of every file.
struct Crate {
    name: &'static str,
    /// Module path (`sensors::disk`) to file.
    modules: BTreeMap<String, PathBuf>,
}

fn module_files(root_file: &Path) -> BTreeMap<String, PathBuf> {
    let mut out = BTreeMap::new();
    out.insert(String::new(), root_file.to_path_buf());
    let dir = root_file.parent().expect("a crate root has a directory");
    let mut stack = vec![(dir.to_path_buf(), String::new(), root_file.to_path_buf())];
    while let Some((dir, prefix, file)) = stack.pop() {
        let text = std::fs::read_to_string(&file).unwrap_or_default();
        for line in text.lines() {
            let t = line.trim_start();
            let t = t.strip_prefix("pub ").unwrap_or(t);
            let t = t.strip_prefix("pub(crate) ").unwrap_or(t);
            let Some(name) = t.strip_prefix("mod ").and_then(|r| r.strip_suffix(';')) else {
                continue;
            };
            if name == "tests" {
                continue;
            }
            let path = if prefix.is_empty() {
                name.to_string()
            } else {
                format!("{prefix}::{name}")
            };
            let base = if file
                .file_name()
                .is_some_and(|f| f == "mod.rs" || file == root_file)
            {
                dir.clone()
            } else {
                dir.join(file.file_stem().expect("a file has a stem"))
            };
            let (child, child_dir) = if base.join(format!("{name}.rs")).exists() {
                (base.join(format!("{name}.rs")), base.clone())
            } else {
                (base.join(name).join("mod.rs"), base.join(name))
            };
            if child.exists() {
                out.insert(path.clone(), child.clone());
                stack.push((child_dir, path, child));
            }
        }
    }
    out
}

/// The code of a file without its `#[cfg(test)]` items and comments.
fn code(text: &str) -> String {
    let mut out = String::new();
    let mut skip_depth: Option<i32> = None;
    let mut depth = 0i32;
    let mut pending_test = false;
    for line in text.lines() {
        let t = line.trim();
        if t.starts_with("//") {
            continue;
        }
        if t.starts_with("#[cfg(test)]") {
            pending_test = true;
            continue;
        }
        let opens = line.matches('{').count() as i32;
        let closes = line.matches('}').count() as i32;
        if pending_test && skip_depth.is_none() {
            skip_depth = Some(depth);
            pending_test = false;
            if opens == 0 {
                // `#[cfg(test)] mod tests;` or a one-line item.
                skip_depth = None;
                continue;
            }
        }
        depth += opens - closes;
        if let Some(d) = skip_depth {
            if depth <= d {
                skip_depth = None;
            }
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// Every path the code names that starts with one of `roots`, as written (`crate::a::b::C`).
fn paths(code: &str) -> Vec<String> {
    let mut out = Vec::new();
    // `use` declarations (a line starting with `use`, `pub use` or `pub(crate) use`), expanded
    // from `a::{b, c::{d}}` into `a::b`, `a::c::d`.
    let mut decl: Option<String> = None;
    for line in code.lines() {
        let t = line.trim_start();
        let t = t
            .strip_prefix("pub(crate) ")
            .or_else(|| t.strip_prefix("pub "))
            .unwrap_or(t);
        if decl.is_none() && t.starts_with("use ") {
            decl = Some(String::new());
        }
        let Some(d) = decl.as_mut() else { continue };
        d.push(' ');
        d.push_str(t.strip_prefix("use ").unwrap_or(t));
        if let Some(end) = d.find(';') {
            let tree = d[..end].split_whitespace().collect::<Vec<_>>().join(" ");
            expand("", &tree, &mut out);
            decl = None;
        }
    }
    // Inline paths.
    for start in ["crate::", "super::", "self::", "catchup::"] {
        let mut from = 0;
        while let Some(i) = code[from..].find(start) {
            let at = from + i;
            from = at + start.len();
            if code[..at]
                .chars()
                .last()
                .is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':')
            {
                continue;
            }
            let tail: String = code[at..]
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
                .collect();
            out.push(tail.trim_end_matches(':').to_string());
        }
    }
    out
}

fn expand(prefix: &str, tree: &str, out: &mut Vec<String>) {
    let tree = tree.trim().trim_start_matches("::");
    if let Some(open) = tree.find('{') {
        let head = format!("{prefix}{}", tree[..open].trim());
        let close = tree.rfind('}').filter(|c| *c > open).unwrap_or(tree.len());
        let inner = &tree[open + 1..close];
        let mut depth = 0;
        let mut start = 0;
        for (i, c) in inner.char_indices() {
            match c {
                '{' => depth += 1,
                '}' => depth -= 1,
                ',' if depth == 0 => {
                    expand(&head, &inner[start..i], out);
                    start = i + 1;
                }
                _ => {}
            }
        }
        expand(&head, &inner[start..], out);
    } else if !tree.is_empty() {
        let item = tree.split(" as ").next().unwrap_or(tree).trim();
        out.push(format!("{prefix}{item}"));
    }
}

/// The module a path leads to from `module`, in `krate`, if it is one of the crate's.
fn resolve(krate: &Crate, module: &str, path: &str) -> Option<String> {
    let mut segments: Vec<&str> = path.split("::").filter(|s| !s.is_empty()).collect();
    let here: Vec<&str> = module.split("::").filter(|s| !s.is_empty()).collect();
    let mut base: Vec<&str> = match segments.first().copied() {
        Some("crate") => {
            segments.remove(0);
            Vec::new()
        }
        Some("catchup") if krate.name == "bin" => return None,
        Some("self") => {
            segments.remove(0);
            here.clone()
        }
        Some("super") => {
            let mut up = here.clone();
            while segments.first() == Some(&"super") {
                segments.remove(0);
                up.pop();
            }
            up
        }
        _ => return None,
    };
    let mut best = base.join("::");
    for s in segments {
        base.push(s);
        let candidate = base.join("::");
        if krate.modules.contains_key(&candidate) {
            best = candidate;
        } else {
            break;
        }
    }
    krate.modules.contains_key(&best).then_some(best)
}

/// Module -> the modules it imports.
fn imports(krate: &Crate) -> BTreeMap<String, BTreeSet<String>> {
    let mut graph = BTreeMap::new();
    for (module, file) in &krate.modules {
        let text = std::fs::read_to_string(file).expect("the file is readable");
        let mut to = BTreeSet::new();
        for p in paths(&code(&text)) {
            if let Some(target) = resolve(krate, module, &p)
                && &target != module
                && !module.starts_with(&format!("{target}::"))
                && !(target.is_empty())
            {
                to.insert(target);
            }
        }
        graph.insert(module.clone(), to);
    }
    graph
}

/// Cycles (strongly connected components of more than one node) of `graph`.
fn cycles(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    // Tarjan's algorithm, iteratively small enough to recurse.
    struct T<'a> {
        g: &'a BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on: BTreeSet<&'a str>,
        out: Vec<Vec<String>>,
    }
    fn visit<'a>(t: &mut T<'a>, v: &'a str) {
        let i = t.index.len();
        t.index.insert(v, i);
        t.low.insert(v, i);
        t.stack.push(v);
        t.on.insert(v);
        for w in t.g.get(v).into_iter().flatten() {
            let w = w.as_str();
            if !t.index.contains_key(w) {
                visit(t, w);
                let lw = t.low[w];
                let lv = t.low[v];
                t.low.insert(v, lv.min(lw));
            } else if t.on.contains(w) {
                let iw = t.index[w];
                let lv = t.low[v];
                t.low.insert(v, lv.min(iw));
            }
        }
        if t.low[v] == t.index[v] {
            let mut scc = Vec::new();
            while let Some(w) = t.stack.pop() {
                t.on.remove(w);
                scc.push(w.to_string());
                if w == v {
                    break;
                }
            }
            if scc.len() > 1 {
                scc.sort();
                t.out.push(scc);
            }
        }
    }
    let mut t = T {
        g: graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on: BTreeSet::new(),
        out: Vec::new(),
    };
    for v in graph.keys() {
        if !t.index.contains_key(v.as_str()) {
            visit(&mut t, v);
        }
    }
    t.out
}

fn crates() -> Vec<Crate> {
    let r = root();
    [
        ("lib", r.join("src/lib.rs")),
        ("bin", r.join("src/main.rs")),
        ("proto", r.join("proto/src/lib.rs")),
        ("client", r.join("client/src/lib.rs")),
        ("testkit", r.join("testkit/src/lib.rs")),
    ]
    .into_iter()
    .filter(|(_, f)| f.exists())
    .map(|(name, f)| Crate {
        name,
        modules: module_files(&f),
    })
    .collect()
}

/// The top-level module of `module` (`sensors` of `sensors::disk::cloudwatch`).
fn top(module: &str) -> String {
    module.split("::").next().unwrap_or("").to_string()
}

#[test]
fn no_module_imports_one_that_imports_it_back() {
    let mut found = Vec::new();
    for krate in crates() {
        let graph = imports(&krate);
        for c in cycles(&graph) {
            found.push(format!("{} files: {}", krate.name, c.join(" <-> ")));
        }
        let mut tops: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (from, to) in &graph {
            let entry = tops.entry(top(from)).or_default();
            entry.extend(to.iter().map(|t| top(t)).filter(|t| *t != top(from)));
        }
        for c in cycles(&tops) {
            found.push(format!(
                "{} top-level modules: {}",
                krate.name,
                c.join(" <-> ")
            ));
        }
    }
    assert!(found.is_empty(), "import cycles:\n{}", found.join("\n"));
}

#[test]
fn the_checker_sees_a_cycle() {
    let graph: BTreeMap<String, BTreeSet<String>> = [
        ("a", vec!["b"]),
        ("b", vec!["c"]),
        ("c", vec!["a"]),
        ("d", vec!["a"]),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.into_iter().map(String::from).collect()))
    .collect();
    assert_eq!(cycles(&graph), vec![vec!["a", "b", "c"]]);
    let mut found = Vec::new();
    expand("", "crate::a::{b,c::{d,e}}", &mut found);
    assert_eq!(found, ["crate::a::b", "crate::a::c::d", "crate::a::c::e"]);
    let lib = crates().into_iter().next().expect("the library");
    assert!(
        imports(&lib)["runtime::tick"].contains("policy"),
        "the tick imports the policy engine"
    );
}

#[test]
fn no_source_file_is_over_600_lines_before_its_tests() {
    let mut long = Vec::new();
    for krate in crates() {
        for file in krate.modules.values() {
            let text = std::fs::read_to_string(file).expect("the file is readable");
            let lines = text
                .lines()
                .take_while(|l| !l.trim_start().starts_with("#[cfg(test)]"))
                .count();
            if lines > 600 {
                long.push(format!("{} ({lines})", file.display()));
            }
        }
    }
    assert!(long.is_empty(), "split by role: {}", long.join(", "));
}
