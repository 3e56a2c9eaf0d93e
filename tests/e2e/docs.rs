//! The rule authors' guide names every field, case and function of the contract, so a
//! change to `wit/` that the guide does not follow fails here.

use crate::support::workspace;

/// Every record field, enum and variant case, and function name declared in `wit/`.
fn contract_names() -> Vec<String> {
    let mut names = Vec::new();
    let dir = workspace().join("wit");
    for entry in std::fs::read_dir(&dir).expect("wit/ exists") {
        let text = std::fs::read_to_string(entry.expect("entry").path()).expect("wit file");
        let mut block = "";
        for line in text.lines().map(str::trim) {
            if line.starts_with("//") || line.is_empty() {
                continue;
            }
            let mut words = line.split_whitespace();
            if let (Some(kind @ ("record" | "enum" | "variant" | "interface" | "world")), Some(_)) =
                (words.next(), words.next())
            {
                block = kind;
                continue;
            }
            if line == "}" {
                block = "";
                continue;
            }
            let name: String = line
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-')
                .collect();
            if name.is_empty() {
                continue;
            }
            let rest = &line[name.len()..];
            let declared = match block {
                "record" => rest.starts_with(':'),
                "enum" | "variant" => rest.starts_with(',') || rest.starts_with('('),
                _ => rest.starts_with(": func"),
            };
            if declared {
                names.push(name);
            }
        }
    }
    names
}

#[test]
fn the_rule_guide_names_every_field_case_and_function_of_the_contract() {
    let guide = std::fs::read_to_string(workspace().join("docs/writing-rules.md"))
        .expect("the guide exists");
    let names = contract_names();
    assert!(
        names.len() > 60,
        "the WIT parser found too little: {names:?}"
    );
    let missing: Vec<&String> = names
        .iter()
        .filter(|name| {
            !guide.contains(&format!("`{name}`"))
                && !guide.contains(&format!("{name}("))
                && !guide.contains(&format!("`{name}("))
        })
        .collect();
    assert!(
        missing.is_empty(),
        "docs/writing-rules.md does not mention: {missing:?}"
    );
}
