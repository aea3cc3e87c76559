//! The configuration reference and the example files, generated from the tables so they stay
//! true. `cargo run -p spate-config --example config-reference` writes them; a test fails when
//! the checked-in copies differ.

use std::fmt::Write as _;

use crate::broker::{BROKER_CONFIG_DEFS, BrokerConfigDef, node_identity_key};
use crate::node::NODE_KEYS;
use crate::topic::{SynonymUnit, TOPIC_CONFIG_DEFS};
use crate::value::ConfigType;

/// Where the reference lives, relative to the repository root.
pub const REFERENCE_PATH: &str = "docs/configuration.md";
/// Where the single-node example lives, relative to the repository root.
pub const SINGLE_NODE_EXAMPLE_PATH: &str = "config/examples/single-node.toml";
/// Where the first three-node example lives, relative to the repository root.
pub const THREE_NODE_EXAMPLE_PATH: &str = "config/examples/three-node-0.toml";

fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}

fn code(text: &str) -> String {
    if text.is_empty() {
        "`\"\"`".to_string()
    } else {
        format!("`{}`", cell(text))
    }
}

fn default_cell(default: Option<&str>) -> String {
    match default {
        Some(value) => code(value),
        None => "null".to_string(),
    }
}

fn sorted_topic_defs() -> Vec<&'static crate::topic::TopicConfigDef> {
    let mut defs: Vec<_> = TOPIC_CONFIG_DEFS.iter().collect();
    defs.sort_by_key(|def| def.name);
    defs
}

/// The Markdown configuration reference (`docs/configuration.md`).
pub fn render_reference() -> String {
    let mut out = String::new();
    let w = &mut out;
    let _ = writeln!(w, "# Configuration reference\n");
    let _ = writeln!(
        w,
        "<!-- Generated from the tables in the config crate by \
         `cargo run -p spate-config --example config-reference`. Do not edit by hand: a test fails \
         when this file and the tables disagree. -->\n"
    );
    let _ = writeln!(
        w,
        "A node reads one TOML file (`spate serve --config FILE`, or the file named by `SPATE_CONFIG`), \
         then `SPATE_*` environment variables, then command-line flags; each overrides the one before. \
         With none of them, `spate serve` runs a single node: id 0, the only controller voter, data in \
         `./data`, Kafka on 127.0.0.1:9092.\n"
    );
    let _ = writeln!(
        w,
        "Examples: `config/examples/single-node.toml` (every default spelled out) and \
         `config/examples/three-node-0.toml` (the first node of a local three-node cluster on \
         127.0.0.1, 127.0.0.2 and 127.0.0.3).\n"
    );

    let _ = writeln!(w, "## Node keys\n");
    let _ = writeln!(
        w,
        "Keys with a dot live in a TOML table: `kafka.listen` is `listen` under `[kafka]`. Addresses \
         are `HOST:PORT`, where the host is an IPv4 address, an IPv6 address in brackets, or a DNS name. \
         Port 0 binds a free port; the broker then advertises the port it bound.\n"
    );
    let _ = writeln!(w, "| TOML key | environment | flag | default | meaning |");
    let _ = writeln!(w, "| --- | --- | --- | --- | --- |");
    for def in NODE_KEYS {
        let _ = writeln!(
            w,
            "| `{}` | `{}` | `{} {}` | {} | {} |",
            def.toml,
            def.env,
            def.flag,
            cell(def.value_name),
            def.default.map_or("unset".to_string(), code),
            cell(def.documentation)
        );
    }
    let _ = writeln!(
        w,
        "| (file) | `SPATE_CONFIG` | `--config FILE` | unset | The TOML file to read. |"
    );
    let _ = writeln!(
        w,
        "| `[broker]` table | | `--set KEY=VALUE` | | A broker setting by its Kafka name (below); \
         `--set` is repeatable and wins over the file. |\n"
    );

    let _ = writeln!(w, "## Broker settings\n");
    let _ = writeln!(
        w,
        "Broker settings use Apache Kafka's names and defaults, in the file's `[broker]` table or with \
         `--set KEY=VALUE`. Quote the names in TOML (`\"num.partitions\" = 3`); unquoted dotted keys \
         also work where TOML allows them. Values may be TOML strings, numbers, booleans or arrays \
         (joined with commas). Unknown names are an error that names the key. The settings that \
         describe the node itself (`node.id`, `log.dirs`, `listeners`, `advertised.listeners`, \
         `controller.quorum.voters`, `broker.rack`, …) come from the node keys above and cannot be set \
         here.\n"
    );
    let _ = writeln!(
        w,
        "\"Update\" is Kafka's dynamic update mode: `read-only` settings change with a restart; \
         `per-broker` ones also with AlterConfigs on the broker's resource; `cluster-wide` ones also on \
         the cluster default resource `\"\"`. A value's source, reported by DescribeConfigs, is the first \
         of: the broker's dynamic config, the cluster-wide dynamic default, this file (with environment \
         and flags), Kafka's default.\n"
    );
    let _ = writeln!(
        w,
        "Differences from Kafka, on purpose: AlterConfigs refuses broker config names Spate does not \
         know (Kafka stores them; Spate knows every Kafka 4.3 broker config, so only typos and newer \
         names are refused); a dynamic change is checked against the related limits (for example \
         `message.max.bytes` against `socket.request.max.bytes`) before it is accepted; and `listeners` \
         and `listener.security.protocol.map` are read-only because Spate binds its listeners once.\n"
    );
    let _ = writeln!(
        w,
        "When the quorum has fewer voters than Kafka's defaults for `offsets.topic.replication.factor` (3), \
         `transaction.state.log.replication.factor` (3) and `transaction.state.log.min.isr` (2) and they \
         are not set, Spate lowers them to the number of voters, so a single node can create its internal \
         topics.\n"
    );
    let _ = writeln!(w, "### Settings Spate acts on\n");
    let _ = writeln!(
        w,
        "| name | type | default | valid values | update | meaning |"
    );
    let _ = writeln!(w, "| --- | --- | --- | --- | --- | --- |");
    let used = BROKER_CONFIG_DEFS.iter().filter(|def| def.used_by_spate);
    for def in used {
        let meaning = match node_identity_key(def.name) {
            Some(_) => format!("{} (set by the node keys)", def.documentation),
            None => def.documentation.to_string(),
        };
        let _ = writeln!(
            w,
            "| `{}` | {} | {} | {} | {} | {} |",
            def.name,
            def.config_type.kafka_name().to_ascii_lowercase(),
            default_cell(def.default),
            cell(&def.validator.describe()),
            def.update_mode.kafka_name(),
            cell(&meaning)
        );
    }
    let _ = writeln!(w);
    let _ = writeln!(w, "### Accepted for compatibility\n");
    let _ = writeln!(
        w,
        "Spate accepts these Kafka broker settings, validates them with Kafka's types and ranges and \
         reports them in DescribeConfigs, but does not act on them. Values of `password` settings are \
         never shown.\n"
    );
    let _ = writeln!(w, "| name | type | default | update |");
    let _ = writeln!(w, "| --- | --- | --- | --- |");
    for def in BROKER_CONFIG_DEFS.iter().filter(|def| !def.used_by_spate) {
        let _ = writeln!(
            w,
            "| `{}` | {} | {} | {} |",
            def.name,
            def.config_type.kafka_name().to_ascii_lowercase(),
            if def.config_type == ConfigType::Password {
                "(hidden)".to_string()
            } else {
                default_cell(def.default)
            },
            def.update_mode.kafka_name()
        );
    }
    let _ = writeln!(w);

    let _ = writeln!(w, "## Topic configs\n");
    let _ = writeln!(
        w,
        "Every topic config of Apache Kafka 4.x, with Kafka's names, types, defaults and valid values. A \
         topic's own value (CreateTopics, AlterConfigs, IncrementalAlterConfigs) wins; otherwise the first \
         broker setting in \"cluster-wide default from\" that has a value; otherwise the default here. Kafka \
         4.0 removed `message.format.version`, `message.timestamp.difference.max.ms` and \
         `message.downconversion.enable`; Spate rejects them as unknown, as Kafka 4.x does.\n"
    );
    let _ = writeln!(
        w,
        "| name | type | default | valid values | cluster-wide default from | meaning |"
    );
    let _ = writeln!(w, "| --- | --- | --- | --- | --- | --- |");
    for def in sorted_topic_defs() {
        let synonyms: Vec<String> = def
            .synonyms
            .iter()
            .map(|synonym| match synonym.unit {
                SynonymUnit::Same => format!("`{}`", synonym.name),
                SynonymUnit::MinutesToMillis => format!("`{}` (minutes)", synonym.name),
                SynonymUnit::HoursToMillis => format!("`{}` (hours)", synonym.name),
            })
            .collect();
        let _ = writeln!(
            w,
            "| `{}` | {} | {} | {} | {} | {} |",
            def.name,
            def.config_type.kafka_name().to_ascii_lowercase(),
            code(def.default),
            cell(&def.validator.describe()),
            if synonyms.is_empty() {
                "none".to_string()
            } else {
                synonyms.join(", ")
            },
            cell(def.documentation)
        );
    }
    out
}

/// A TOML literal for a broker default, typed as the config's type.
fn toml_literal(def: &BrokerConfigDef, value: &str) -> String {
    match def.config_type {
        ConfigType::Int | ConfigType::Short | ConfigType::Long | ConfigType::Boolean => {
            value.to_string()
        }
        ConfigType::Double if value.parse::<f64>().is_ok_and(f64::is_finite) => value.to_string(),
        _ => format!("\"{}\"", value.replace('\\', "\\\\").replace('"', "\\\"")),
    }
}

fn wrap_comment(out: &mut String, text: &str) {
    const WIDTH_CHARS: usize = 98;
    let mut line = String::from("#");
    for word in text.split_whitespace() {
        if line.len() + 1 + word.len() > WIDTH_CHARS && line.len() > 1 {
            out.push_str(&line);
            out.push('\n');
            line = String::from("#");
        }
        line.push(' ');
        line.push_str(word);
    }
    out.push_str(&line);
    out.push('\n');
}

struct ExampleNode<'a> {
    title: &'a str,
    node_id: &'a str,
    data_dir: &'a str,
    host: &'a str,
    voters: &'a str,
    broker: &'a [(&'a str, &'a str)],
}

fn render_example(node: &ExampleNode<'_>) -> String {
    let mut out = String::new();
    wrap_comment(&mut out, node.title);
    wrap_comment(
        &mut out,
        "Precedence: this file < SPATE_* environment variables < flags of `spate serve`. Every node key \
         below has both; see docs/configuration.md. Unset keys take the default shown in their comment.",
    );
    out.push('\n');
    let value = |toml: &str| -> Option<String> {
        Some(match toml {
            "node_id" => node.node_id.to_string(),
            "data_dir" => format!("\"{}\"", node.data_dir),
            "kafka.listen" => format!("\"{}:9092\"", node.host),
            "controller.listen" => format!("\"{}:9093\"", node.host),
            "controller.voters" => format!("\"{}\"", node.voters),
            "cloudevents.listen" => format!("\"{}:8080\"", node.host),
            "admin.listen" => format!("\"{}:9644\"", node.host),
            "log.format" => "\"human\"".to_string(),
            "log.level" => "\"info\"".to_string(),
            _ => return None,
        })
    };
    // TOML needs the top-level keys before the first table.
    let mut ordered: Vec<_> = NODE_KEYS.iter().collect();
    ordered.sort_by_key(|def| def.toml.contains('.'));
    let mut section = "";
    for def in ordered {
        let (table, key) = match def.toml.split_once('.') {
            Some((table, key)) => (table, key),
            None => ("", def.toml),
        };
        if table != section {
            let _ = writeln!(out, "[{table}]");
            section = table;
        }
        let env_and_flag = format!("({}, {})", def.env, def.flag);
        match (value(def.toml), def.default) {
            (Some(set), Some(default)) => {
                wrap_comment(
                    &mut out,
                    &format!("{} Default: {default}. {env_and_flag}", def.documentation),
                );
                let _ = writeln!(out, "{key} = {set}\n");
            }
            (Some(set), None) => {
                wrap_comment(&mut out, &format!("{} {env_and_flag}", def.documentation));
                let _ = writeln!(out, "{key} = {set}\n");
            }
            (None, _) => {
                wrap_comment(
                    &mut out,
                    &format!("{} Unset by default. {env_and_flag}", def.documentation),
                );
                let _ = writeln!(out, "# {key} = \"\"\n");
            }
        }
    }
    let _ = writeln!(out, "[broker]");
    wrap_comment(
        &mut out,
        "Broker settings by their Apache Kafka names (also `--set NAME=VALUE`). The ones set here differ \
         from the defaults; the commented ones show every setting Spate acts on with its default.",
    );
    for (name, value) in node.broker {
        let _ = writeln!(out, "\"{name}\" = {value}");
    }
    out.push('\n');
    for def in BROKER_CONFIG_DEFS
        .iter()
        .filter(|def| def.used_by_spate && node_identity_key(def.name).is_none())
    {
        if node.broker.iter().any(|(name, _)| *name == def.name) {
            continue;
        }
        wrap_comment(&mut out, def.documentation);
        match def.default {
            Some(default) => {
                let _ = writeln!(out, "# \"{}\" = {}", def.name, toml_literal(def, default));
            }
            None => {
                let _ = writeln!(out, "# \"{}\" = (unset by default)", def.name);
            }
        }
    }
    out
}

/// `config/examples/single-node.toml`: one node with every default written out.
pub fn render_single_node_example() -> String {
    render_example(&ExampleNode {
        title: "Spate, single node: every node key set to its default. `spate serve` with no \
                configuration runs exactly this. Run: spate serve --config config/examples/single-node.toml",
        node_id: "0",
        data_dir: "./data",
        host: "127.0.0.1",
        voters: "0@127.0.0.1:9093",
        broker: &[],
    })
}

/// `config/examples/three-node-0.toml`: node 0 of a local three-node cluster; nodes 1 and 2
/// differ only in node_id, data_dir and 127.0.0.2 / 127.0.0.3 (or their SPATE_* variables).
pub fn render_three_node_example() -> String {
    render_example(&ExampleNode {
        title: "Spate, node 0 of a three-node cluster on one machine. Nodes 1 and 2 use the same file \
                with SPATE_NODE_ID=1 or 2, SPATE_DATA_DIR=./data-1 or ./data-2, and 127.0.0.2 or 127.0.0.3 \
                in SPATE_KAFKA_LISTEN, SPATE_CONTROLLER_LISTEN, SPATE_CLOUDEVENTS_LISTEN and \
                SPATE_ADMIN_LISTEN: the same shape as a StatefulSet, where the pod ordinal is the node id.",
        node_id: "0",
        data_dir: "./data-0",
        host: "127.0.0.1",
        voters: "0@127.0.0.1:9093,1@127.0.0.2:9093,2@127.0.0.3:9093",
        broker: &[
            ("default.replication.factor", "3"),
            ("min.insync.replicas", "2"),
            ("num.partitions", "3"),
        ],
    })
}
