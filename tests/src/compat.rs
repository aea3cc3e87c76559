//! Compatibility results: each e2e test records, feature by feature, whether a client worked
//! against the target; `compat-report` renders them into `docs/compatibility.md`.
//!
//! One JSON file per (target, client): `<cargo target dir>/compat/<target>/<client>.json`,
//! rewritten after every recorded feature so a test that dies midway leaves what it learned.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::paths;
use crate::target::TargetKind;

/// Longest failure detail kept in a result file.
const DETAIL_CHARS_MAX: usize = 400;

/// The outcome of one feature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Worked and checked.
    Pass,
    /// Tried and failed.
    Fail,
    /// The client cannot do it; not tried.
    Unsupported,
}

/// One feature's result.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FeatureResult {
    /// Feature name, a column of the table.
    pub feature: String,
    /// Outcome.
    pub status: Status,
    /// Why it failed or is unsupported.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub detail: String,
}

/// All results of one client against one target.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClientResults {
    /// Which table: `clients` or `tools`.
    pub suite: String,
    /// Client short name.
    pub client: String,
    /// Library and version.
    pub description: String,
    /// `spate` or `kafka`.
    pub target: String,
    /// Features in the order they were recorded.
    pub features: Vec<FeatureResult>,
}

/// The directory results for `target` go to.
pub fn results_dir(target: TargetKind) -> Result<PathBuf> {
    Ok(paths::cargo_target_dir()?
        .join("compat")
        .join(target.name()))
}

/// Records results for one client against one target, keeping the file on disk current.
pub struct Recorder {
    path: PathBuf,
    results: ClientResults,
}

impl Recorder {
    /// Starts an empty result file for `client` (replacing one from an earlier run).
    pub fn new(
        suite: &str,
        client: &str,
        description: &str,
        target: TargetKind,
    ) -> Result<Recorder> {
        let dir = results_dir(target)?;
        fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let recorder = Recorder {
            path: dir.join(format!("{client}.json")),
            results: ClientResults {
                suite: suite.to_owned(),
                client: client.to_owned(),
                description: description.to_owned(),
                target: target.name().to_owned(),
                features: Vec::new(),
            },
        };
        recorder.save()?;
        Ok(recorder)
    }

    fn save(&self) -> Result<()> {
        let tmp = self.path.with_extension("json.tmp");
        fs::write(&tmp, serde_json::to_string_pretty(&self.results)?)
            .with_context(|| format!("cannot write {}", tmp.display()))?;
        fs::rename(&tmp, &self.path)
            .with_context(|| format!("cannot write {}", self.path.display()))
    }

    /// Records `feature` (replacing an earlier result for it).
    pub fn record(&mut self, feature: &str, status: Status, detail: &str) -> Result<()> {
        let detail: String = detail.trim().chars().take(DETAIL_CHARS_MAX).collect();
        let result = FeatureResult {
            feature: feature.to_owned(),
            status,
            detail,
        };
        match self
            .results
            .features
            .iter_mut()
            .find(|f| f.feature == feature)
        {
            Some(existing) => *existing = result,
            None => self.results.features.push(result),
        }
        self.save()
    }

    /// Records pass or fail from `result` and hands it back.
    pub fn outcome<T>(&mut self, feature: &str, result: Result<T>) -> Result<T> {
        match &result {
            Ok(_) => self.record(feature, Status::Pass, "")?,
            Err(e) => {
                let first_line = format!("{e:#}")
                    .lines()
                    .next()
                    .unwrap_or_default()
                    .to_owned();
                self.record(feature, Status::Fail, &first_line)?;
            }
        }
        result
    }

    /// The path of the result file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Reads every result file in `dir`, sorted by suite then client.
pub fn read_results(dir: &Path) -> Result<Vec<ClientResults>> {
    let mut all = Vec::new();
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(all),
        Err(e) => return Err(e).with_context(|| format!("cannot list {}", dir.display())),
    };
    for entry in entries {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "json") {
            let text = fs::read_to_string(&path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            all.push(
                serde_json::from_str(&text)
                    .with_context(|| format!("bad result file {}", path.display()))?,
            );
        }
    }
    all.sort_by(|a: &ClientResults, b| (&a.suite, &a.client).cmp(&(&b.suite, &b.client)));
    Ok(all)
}
