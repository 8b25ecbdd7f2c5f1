//! The picture of a run: disk per broker, lag, consumer rate and local retention over time, stacked,
//! sharing the time axis, so the story of a catch-up is seen at a glance.

use std::path::Path;

use plotters::prelude::*;

use super::summary::Outcome;
use crate::policy::Policy;

/// Errors drawing a plot.
#[derive(Debug, thiserror::Error)]
#[error("plot: {0}")]
pub struct PlotError(String);

fn err<E: std::fmt::Display>(e: E) -> PlotError {
    PlotError(e.to_string())
}

/// Draws `outcome` into an SVG file.
pub fn draw(file: &Path, outcome: &Outcome, policy: &Policy) -> Result<(), PlotError> {
    let s = &outcome.series;
    let root = SVGBackend::new(file, (1200, 1000)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let title = format!(
        "{} - controller: {}",
        outcome.summary.scenario, outcome.summary.controller
    );
    let root = root.titled(&title, ("sans-serif", 22)).map_err(err)?;
    let panels = root.split_evenly((4, 1));
    let x_max = s.hours.last().copied().unwrap_or(1.0).max(0.1);

    // Disk.
    let mut chart = ChartBuilder::on(&panels[0])
        .margin(8)
        .x_label_area_size(24)
        .y_label_area_size(60)
        .caption("disk used per broker (%)", ("sans-serif", 16))
        .build_cartesian_2d(0.0..x_max, 0.0..100.0)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("hours since catch-up start")
        .draw()
        .map_err(err)?;
    for (b, series) in s.disk.iter().enumerate() {
        let color = Palette99::pick(b).to_rgba();
        chart
            .draw_series(LineSeries::new(
                s.hours.iter().copied().zip(series.iter().copied()),
                color.stroke_width(2),
            ))
            .map_err(err)?
            .label(format!("broker {}", b + 1))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], color));
    }
    for (level, label, color) in [
        (policy.disk.ceiling_percent, "ceiling", RED),
        (policy.disk.pause_percent, "pause", MAGENTA),
        (
            policy.disk.throttle_start_percent,
            "throttle start",
            RGBColor(120, 120, 120),
        ),
    ] {
        chart
            .draw_series(LineSeries::new(
                [(0.0, level), (x_max, level)],
                color.stroke_width(1),
            ))
            .map_err(err)?
            .label(format!("{label} {level}%"))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], color));
    }
    draw_legend(&mut chart)?;

    single_line(
        &panels[1],
        "lag of the catch-up groups (million records)",
        &s.hours,
        &s.lag,
        1e6,
        BLUE,
    )?;
    single_line(
        &panels[2],
        "consume rate (thousand records/s)",
        &s.hours,
        &s.rate,
        1e3,
        GREEN,
    )?;

    // Retention.
    let ret_max = s
        .retention
        .values()
        .flatten()
        .copied()
        .filter(|v| v.is_finite())
        .fold(1.0, f64::max)
        * 1.1;
    let mut chart = ChartBuilder::on(&panels[3])
        .margin(8)
        .x_label_area_size(30)
        .y_label_area_size(60)
        .caption(
            "local.retention.ms of managed topics (hours)",
            ("sans-serif", 16),
        )
        .build_cartesian_2d(0.0..x_max, 0.0..ret_max)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("hours since catch-up start")
        .draw()
        .map_err(err)?;
    for (i, (topic, values)) in s.retention.iter().enumerate() {
        let color = Palette99::pick(i + 3).to_rgba();
        chart
            .draw_series(LineSeries::new(
                s.hours.iter().copied().zip(values.iter().copied()),
                color.stroke_width(2),
            ))
            .map_err(err)?
            .label(topic.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], color));
    }
    draw_legend(&mut chart)?;
    root.present().map_err(err)?;
    Ok(())
}

/// A panel with one curve, `values / scale` over `hours`.
fn single_line(
    area: &DrawingArea<SVGBackend<'_>, plotters::coord::Shift>,
    caption: &str,
    hours: &[f64],
    values: &[f64],
    scale: f64,
    color: RGBColor,
) -> Result<(), PlotError> {
    let x_max = hours.last().copied().unwrap_or(1.0).max(0.1);
    let y_max = values.iter().copied().fold(1.0, f64::max) * 1.05 / scale;
    let mut chart = ChartBuilder::on(area)
        .margin(8)
        .x_label_area_size(24)
        .y_label_area_size(60)
        .caption(caption, ("sans-serif", 16))
        .build_cartesian_2d(0.0..x_max, 0.0..y_max)
        .map_err(err)?;
    chart.configure_mesh().draw().map_err(err)?;
    chart
        .draw_series(LineSeries::new(
            hours.iter().copied().zip(values.iter().map(|v| v / scale)),
            color.stroke_width(2),
        ))
        .map_err(err)?;
    Ok(())
}

/// The legend box of a panel.
fn draw_legend<'a, DB: DrawingBackend + 'a, CT: CoordTranslate>(
    chart: &mut ChartContext<'a, DB, CT>,
) -> Result<(), PlotError>
where
    DB::ErrorType: 'static,
{
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(err)
}
