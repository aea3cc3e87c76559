//! PNG plots of a run: grouped bars (Spate beside Kafka) and the latency CDF, drawn with
//! `plotters` on its bitmap backend. Text needs a TrueType font; DejaVu Sans (Debian's
//! `fonts-dejavu-core`) is looked up in the usual places.

use std::path::Path;

use anyhow::{Context, Result, bail};
use plotters::prelude::*;
use plotters::style::FontStyle;

use crate::cluster::SystemKind;
use crate::report::Cdf;

/// Plot size in pixels.
const WIDTH_PX: u32 = 1200;
const HEIGHT_PX: u32 = 700;
/// Where a sans-serif TrueType font is usually found.
const FONT_PATHS: [&str; 4] = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
];
/// The deepest percentile the CDF's axis shows: 99.9999 (six nines).
const CDF_NINES_MAX: f64 = 6.0;

const SPATE_COLOR: RGBColor = RGBColor(230, 115, 0);
const KAFKA_COLOR: RGBColor = RGBColor(40, 90, 170);

fn color(system: SystemKind) -> RGBColor {
    match system {
        SystemKind::Spate => SPATE_COLOR,
        SystemKind::Kafka => KAFKA_COLOR,
    }
}

/// Registers a font for plotters' text; fails when none is installed.
pub fn init_font() -> Result<()> {
    for path in FONT_PATHS {
        if let Ok(bytes) = std::fs::read(path) {
            // plotters keeps registered fonts for the life of the process.
            let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
            if plotters::style::register_font("sans-serif", FontStyle::Normal, bytes).is_ok() {
                return Ok(());
            }
        }
    }
    bail!("no TrueType font found (install fonts-dejavu-core); plots skipped")
}

/// One group of bars: a label and the two systems' values.
pub struct BarGroup {
    /// Label under the group.
    pub label: String,
    /// Spate's value.
    pub spate: Option<f64>,
    /// Kafka's value.
    pub kafka: Option<f64>,
}

/// Grouped bars, Spate beside Kafka, with the ratio above each group.
pub fn bars(path: &Path, title: &str, unit: &str, groups: &[BarGroup]) -> Result<()> {
    if groups.is_empty() {
        bail!("nothing to plot for {title}");
    }
    let max = groups
        .iter()
        .flat_map(|g| [g.spate, g.kafka])
        .flatten()
        .fold(0.0f64, f64::max)
        .max(1e-9);
    let root = BitMapBackend::new(path, (WIDTH_PX, HEIGHT_PX)).into_drawing_area();
    root.fill(&WHITE)?;
    let n = groups.len();
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 26))
        .margin(20)
        .x_label_area_size(60)
        .y_label_area_size(80)
        .build_cartesian_2d(0.0..n as f64, 0.0..max * 1.15)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(n * 2 + 1)
        .x_label_formatter(&|x| {
            let i = x.floor() as usize;
            if (x - x.floor() - 0.5).abs() < 0.01 && i < n {
                groups[i].label.clone()
            } else {
                String::new()
            }
        })
        .y_desc(unit)
        .label_style(("sans-serif", 15))
        .axis_desc_style(("sans-serif", 17))
        .draw()?;
    for (i, group) in groups.iter().enumerate() {
        let x = i as f64;
        for (offset, system, value) in [
            (0.12, SystemKind::Spate, group.spate),
            (0.5, SystemKind::Kafka, group.kafka),
        ] {
            if let Some(v) = value {
                chart.draw_series(std::iter::once(Rectangle::new(
                    [(x + offset, 0.0), (x + offset + 0.36, v)],
                    color(system).filled(),
                )))?;
            }
        }
        if let (Some(s), Some(k)) = (group.spate, group.kafka)
            && k > 0.0
        {
            let top = s.max(k);
            chart.draw_series(std::iter::once(Text::new(
                format!("{:.2}x", s / k),
                (x + 0.35, top + max * 0.03),
                ("sans-serif", 16),
            )))?;
        }
    }
    // Legend entries: empty series carrying the labels.
    for system in [SystemKind::Spate, SystemKind::Kafka] {
        chart
            .draw_series(std::iter::empty::<Rectangle<(f64, f64)>>())?
            .label(system.name())
            .legend(move |(x, y)| {
                Rectangle::new([(x, y - 6), (x + 14, y + 6)], color(system).filled())
            });
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .label_font(("sans-serif", 16))
        .position(SeriesLabelPosition::UpperRight)
        .draw()?;
    root.present().context("cannot write the plot")?;
    Ok(())
}

/// Nines of a percentile: 90 → 1, 99 → 2, 99.9 → 3.
fn nines(percentile: f64) -> f64 {
    (-(1.0 - percentile / 100.0).log10()).min(CDF_NINES_MAX)
}

/// The latency CDF of the median run of each system (by p99), on a percentile axis stretched
/// toward the tail.
pub fn latency_cdf(path: &Path, title: &str, cdfs: &[Cdf]) -> Result<()> {
    let mut chosen = Vec::new();
    for system in [SystemKind::Spate, SystemKind::Kafka] {
        let mut runs: Vec<&Cdf> = cdfs.iter().filter(|c| c.system == system).collect();
        runs.sort_by(|a, b| a.p99_ms.total_cmp(&b.p99_ms));
        if let Some(run) = runs.get(runs.len() / 2) {
            chosen.push(*run);
        }
    }
    if chosen.is_empty() {
        bail!("no latency runs to plot");
    }
    let max = chosen
        .iter()
        .flat_map(|c| c.points.iter().map(|p| p.1))
        .fold(0.0f64, f64::max)
        .max(1e-3);
    let min = chosen
        .iter()
        .flat_map(|c| c.points.iter().map(|p| p.1))
        .fold(f64::INFINITY, f64::min)
        .clamp(0.01, max);
    let root = BitMapBackend::new(path, (WIDTH_PX, HEIGHT_PX)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 26))
        .margin(20)
        .x_label_area_size(50)
        .y_label_area_size(80)
        .build_cartesian_2d(0.0..CDF_NINES_MAX, (min * 0.7..max * 1.5).log_scale())?;
    chart
        .configure_mesh()
        .x_labels(CDF_NINES_MAX as usize + 1)
        .x_label_formatter(&|x| match x.round() as i64 {
            0 => "0%".into(),
            1 => "90%".into(),
            2 => "99%".into(),
            n => format!("99.{}%", "9".repeat((n - 2) as usize)),
        })
        .x_desc("percentile")
        .y_desc("end-to-end latency (ms, log scale)")
        .label_style(("sans-serif", 15))
        .axis_desc_style(("sans-serif", 17))
        .draw()?;
    for cdf in chosen {
        let points: Vec<(f64, f64)> = cdf
            .points
            .iter()
            .filter(|(p, _)| *p < 100.0)
            .map(|(p, ms)| (nines(*p), ms.max(0.01)))
            .collect();
        let c = color(cdf.system);
        chart
            .draw_series(LineSeries::new(points.clone(), c.stroke_width(3)))?
            .label(format!("{} (repeat {})", cdf.system.name(), cdf.repeat))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(3)));
        chart.draw_series(points.into_iter().map(|p| Circle::new(p, 3, c.filled())))?;
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .label_font(("sans-serif", 16))
        .position(SeriesLabelPosition::UpperLeft)
        .draw()?;
    root.present().context("cannot write the plot")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::nines;

    #[test]
    fn nines_stretch_the_tail() {
        assert!((nines(90.0) - 1.0).abs() < 1e-9);
        assert!((nines(99.9) - 3.0).abs() < 1e-9);
        assert_eq!(nines(100.0), 6.0);
    }
}
