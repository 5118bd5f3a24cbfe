//! Progress bars and notes on standard error, drawn by indicatif from what the commands report
//! through [`Progress`]; the library never draws or prints anything itself.

use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use interbank::commands::Progress;

/// How often a spinner with no known end is redrawn.
const SPINNER_TICK_MS: u64 = 100;

/// A bar (or a spinner) shown while a command runs, if it is shown, and the command's notes.
pub struct Bar {
    bar: Option<ProgressBar>,
    /// The command, before each note: `consume: resuming from checkpoint...`.
    command: &'static str,
}

impl Bar {
    /// The broker's bar: transfers decided out of those planned, the live rate and the time left.
    pub fn transfers(planned: u64) -> Bar {
        let bar = ProgressBar::new(planned);
        bar.set_style(style(
            "{spinner} broker [{elapsed_precise}] {wide_bar} {human_pos}/{human_len} transfers {per_sec} eta {eta}",
        ));
        Bar { bar: Some(bar), command: "broker" }
    }

    /// consume's spinner, when `shown`: events replayed so far and the rate (the stream has no
    /// known end). Notes are printed either way.
    pub fn events(shown: bool) -> Bar {
        let bar = shown.then(|| {
            let bar = ProgressBar::new_spinner();
            bar.set_style(style(
                "{spinner} consume [{elapsed_precise}] {human_pos} events replayed {per_sec}",
            ));
            bar.enable_steady_tick(Duration::from_millis(SPINNER_TICK_MS));
            bar
        });
        Bar { bar, command: "consume" }
    }
}

fn style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template).expect("the templates above are valid")
}

impl Progress for Bar {
    fn update(&self, done: u64) {
        if let Some(bar) = &self.bar {
            bar.set_position(done);
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }

    fn note(&self, text: &str) {
        let note = || eprintln!("{}: {text}", self.command);
        match &self.bar {
            Some(bar) => bar.suspend(note),
            None => note(),
        }
    }
}
