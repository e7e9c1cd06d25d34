//! The bench's pictures, as SVG files (plotters' SVG backend and its own text layout: no font
//! or system library): the latency distribution of a federated score against the echo
//! baseline, and what one score costs as the federation grows.

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::{anyhow, Result};
use plotters::prelude::*;

/// Points of one line: (x, y).
type Series = Vec<(f64, f64)>;

/// What the charts are drawn from, filled in by the parts that ran.
#[derive(Default)]
pub(super) struct Charts {
    /// Federated score latencies at concurrency 1 (3 peers), sorted.
    pub score: Vec<Duration>,
    /// Echo (health `Check`) latencies over the same stack, sorted.
    pub echo: Vec<Duration>,
    /// One point per federation size.
    pub growth: Vec<GrowthPoint>,
}

/// What one score cost at one federation size, with the locator and with every member asked.
#[derive(Debug, Clone, Copy)]
pub(super) struct GrowthPoint {
    /// Members.
    pub n: usize,
    /// CPU per score over every node process, ms: (with the locator, everyone asked).
    pub cpu_ms: (f64, f64),
    /// Bytes on the wire per score.
    pub bytes: (f64, f64),
    /// Median latency, ms.
    pub p50_ms: (f64, f64),
}

/// Writes every chart there is data for into `dir`; returns the files written.
pub(super) fn write(dir: &Path, c: &Charts) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let mut written = Vec::new();
    if !c.score.is_empty() && !c.echo.is_empty() {
        let path = dir.join("score-latency.svg");
        latency_cdf(&path, &c.score, &c.echo)?;
        written.push(path);
    }
    if !c.growth.is_empty() {
        let series = |f: fn(&GrowthPoint) -> (f64, f64)| -> (Series, Series) {
            c.growth.iter().map(|g| ((g.n as f64, f(g).0), (g.n as f64, f(g).1))).unzip()
        };
        for (file, title, unit, f) in [
            (
                "growth-cpu.svg",
                "CPU per score, all processes",
                "ms",
                (|g: &GrowthPoint| g.cpu_ms) as fn(&GrowthPoint) -> (f64, f64),
            ),
            ("growth-bytes.svg", "bytes on the wire per score", "bytes", |g: &GrowthPoint| g.bytes),
            ("growth-latency.svg", "score latency p50", "ms", |g: &GrowthPoint| g.p50_ms),
        ] {
            let path = dir.join(file);
            let (located, everyone) = series(f);
            growth_chart(&path, title, unit, &located, &everyone)?;
            written.push(path);
        }
    }
    Ok(written)
}

/// The two distributions as cumulative curves over a logarithmic latency axis.
fn latency_cdf(path: &Path, score: &[Duration], echo: &[Duration]) -> Result<()> {
    let us = |d: &Duration| d.as_secs_f64() * 1e6;
    let lo = score.iter().chain(echo).map(us).fold(f64::MAX, f64::min).max(1.0) * 0.8;
    let hi = score.iter().chain(echo).map(us).fold(0.0, f64::max) * 1.25;
    let root = SVGBackend::new(path, (760, 420)).into_drawing_area();
    root.fill(&WHITE).map_err(draw)?;
    let mut chart = ChartBuilder::on(&root)
        .caption("federated score vs echo: latency distribution (concurrency 1)", ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d((lo..hi).log_scale(), 0.0..100.0)
        .map_err(draw)?;
    chart
        .configure_mesh()
        .x_desc("latency, µs (log scale)")
        .y_desc("% of calls at or below")
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_label_formatter(&|y| format!("{y:.0}"))
        .draw()
        .map_err(draw)?;
    for (samples, label, color) in
        [(echo, "echo (health Check, same mTLS stack)", BLUE), (score, "federated score, 3 peers", RED)]
    {
        let n = samples.len() as f64;
        let points = samples.iter().enumerate().map(|(i, d)| (us(d), 100.0 * (i + 1) as f64 / n));
        chart
            .draw_series(LineSeries::new(points, color.stroke_width(2)))
            .map_err(draw)?
            .label(label)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2)));
    }
    legend_and_present(&mut chart, &root, SeriesLabelPosition::LowerRight)
}

/// One figure against the number of members, with the locator and with every member asked.
fn growth_chart(path: &Path, title: &str, unit: &str, located: &[(f64, f64)], everyone: &[(f64, f64)]) -> Result<()> {
    let max_n = located.iter().map(|p| p.0).fold(1.0, f64::max);
    let max_y = located.iter().chain(everyone).map(|p| p.1).fold(0.0, f64::max).max(f64::MIN_POSITIVE) * 1.15;
    let root = SVGBackend::new(path, (760, 420)).into_drawing_area();
    root.fill(&WHITE).map_err(draw)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(format!("{title} as the federation grows"), ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..max_n * 1.05, 0.0..max_y)
        .map_err(draw)?;
    chart
        .configure_mesh()
        .x_desc("members (N)")
        .y_desc(unit)
        .x_label_formatter(&|x| format!("{x:.0}"))
        .draw()
        .map_err(draw)?;
    for (points, label, color) in [(everyone, "every member asked", RED), (located, "with the record locator", BLUE)] {
        chart
            .draw_series(LineSeries::new(points.iter().copied(), color.stroke_width(2)))
            .map_err(draw)?
            .label(label)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2)));
        chart.draw_series(points.iter().map(|p| Circle::new(*p, 3, color.filled()))).map_err(draw)?;
    }
    legend_and_present(&mut chart, &root, SeriesLabelPosition::UpperLeft)
}

/// Draws the chart's legend at `at` and writes the picture out.
fn legend_and_present<'a, DB, CT>(
    chart: &mut ChartContext<'a, DB, CT>,
    root: &DrawingArea<DB, plotters::coord::Shift>,
    at: SeriesLabelPosition,
) -> Result<()>
where
    DB: DrawingBackend + 'a,
    CT: plotters::coord::CoordTranslate,
{
    chart
        .configure_series_labels()
        .position(at)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .draw()
        .map_err(draw)?;
    root.present().map_err(draw)?;
    Ok(())
}

/// A drawing error as an error of the bench.
fn draw<E: std::fmt::Debug>(e: E) -> anyhow::Error {
    anyhow!("drawing a chart: {e:?}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_chart_is_an_svg_with_its_series_named() {
        let dir = tempfile::tempdir().unwrap();
        let ms = |x: u64| Duration::from_micros(x);
        let c = Charts {
            score: (0..500).map(|i| ms(400 + i)).collect(),
            echo: (0..500).map(|i| ms(120 + i / 10)).collect(),
            growth: [3, 8, 16]
                .iter()
                .map(|&n| GrowthPoint {
                    n,
                    cpu_ms: (1.0, n as f64 * 0.3),
                    bytes: (2e3, n as f64 * 700.0),
                    p50_ms: (0.6, 0.5 + n as f64 * 0.02),
                })
                .collect(),
        };
        let files = write(dir.path(), &c).unwrap();
        assert_eq!(files.len(), 4);
        for f in &files {
            let svg = std::fs::read_to_string(f).unwrap();
            assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"), "{}", f.display());
        }
        let latency = std::fs::read_to_string(dir.path().join("score-latency.svg")).unwrap();
        assert!(latency.contains("federated score, 3 peers") && latency.contains("echo"));
        let cpu = std::fs::read_to_string(dir.path().join("growth-cpu.svg")).unwrap();
        assert!(cpu.contains("with the record locator") && cpu.contains("every member asked"));
    }
}
