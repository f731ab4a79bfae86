//! The script text format (see the module docs of [`super`]): one
//! statement a line, words separated by blanks, `#` to the end of the line
//! a comment.

use std::str::FromStr;
use std::time::Duration;

use super::{Action, Bound, NodeRange, NodeSet, Script, ScriptError, Step, FIGURES};
use crate::sim::NetworkConfig;

impl FromStr for Script {
    type Err = ScriptError;

    fn from_str(text: &str) -> Result<Script, ScriptError> {
        let mut s = Script::default();
        let mut network = None;
        for (i, raw) in text.lines().enumerate() {
            let line = i + 1;
            let body = raw.split('#').next().unwrap_or("").trim();
            if body.is_empty() {
                continue;
            }
            let mut words = Words {
                line,
                text: body,
                rest: body.split_whitespace().collect::<Vec<_>>().into_iter(),
            };
            let head = words.next("a statement")?;
            match head {
                "nodes" => {
                    s.nodes = words.number("a node count like 100")?;
                    if s.nodes < 2 {
                        return Err(words.error("the cluster needs at least 2 nodes".into()));
                    }
                }
                "seed" => s.seed = words.number("a seed like 1")?,
                "profile" => s.profile = words.named("a profile")?,
                "variant" => s.variant = words.named("a variant")?,
                "network" => {
                    network = Some(match words.next("lan, wan or ideal")? {
                        "lan" => NetworkConfig::lan(),
                        "wan" => NetworkConfig::wan(),
                        "ideal" => NetworkConfig::ideal(),
                        w => {
                            return Err(words.error(format!(
                                "unknown network {w:?} (expected lan, wan or ideal)"
                            )))
                        }
                    })
                }
                "report" => {
                    for w in words.rest.by_ref() {
                        if !FIGURES.contains(&w) {
                            return Err(ScriptError::new(
                                line,
                                body,
                                format!(
                                    "unknown figure {w:?} (expected one of {})",
                                    FIGURES.join(", ")
                                ),
                            ));
                        }
                        s.report.push(w.to_owned());
                    }
                }
                "at" | "every" => {
                    let at = words.duration()?;
                    if head == "every" && at.is_zero() {
                        return Err(words.error("`every` needs a positive period".into()));
                    }
                    if words.peek() == Some("end") {
                        words.next("end")?;
                        if s.end.is_some() {
                            return Err(words.error("the end is already set".into()));
                        }
                        s.end = Some(at);
                    } else {
                        let action = words.action()?;
                        s.steps.push(Step {
                            line,
                            text: body.to_owned(),
                            at,
                            repeat: head == "every",
                            action,
                        });
                    }
                }
                w => {
                    return Err(words.error(format!(
                        "unknown statement {w:?} (expected nodes, seed, profile, network, \
                         variant, report, at or every)"
                    )))
                }
            }
            words.finish()?;
        }
        s.network = network.unwrap_or(s.profile.network());
        if let Some(end) = s.end {
            if let Some(late) = s.steps.iter().find(|st| st.at > end) {
                return Err(ScriptError::new(
                    late.line,
                    &late.text,
                    format!("happens after the end at {end:?}"),
                ));
            }
        }
        Ok(s)
    }
}

/// The words of one statement, consumed left to right.
struct Words<'a> {
    line: usize,
    text: &'a str,
    rest: std::vec::IntoIter<&'a str>,
}

impl<'a> Words<'a> {
    fn error(&self, message: String) -> ScriptError {
        ScriptError::new(self.line, self.text, message)
    }

    fn next(&mut self, expected: &str) -> Result<&'a str, ScriptError> {
        self.rest
            .next()
            .ok_or_else(|| self.error(format!("expected {expected} at the end")))
    }

    fn peek(&self) -> Option<&'a str> {
        self.rest.as_slice().first().copied()
    }

    fn finish(&mut self) -> Result<(), ScriptError> {
        match self.rest.next() {
            None => Ok(()),
            Some(w) => Err(self.error(format!("unexpected {w:?} after a complete statement"))),
        }
    }

    fn number<T: FromStr>(&mut self, expected: &str) -> Result<T, ScriptError> {
        let w = self.next(expected)?;
        w.parse()
            .map_err(|_| self.error(format!("{w:?}: expected {expected}")))
    }

    fn named<T: FromStr<Err = String>>(&mut self, expected: &str) -> Result<T, ScriptError> {
        let w = self.next(expected)?;
        w.parse().map_err(|e| self.error(e))
    }

    fn duration(&mut self) -> Result<Duration, ScriptError> {
        let w = self.next("a time like 10s")?;
        parse_duration(w).ok_or_else(|| {
            self.error(format!(
                "{w:?}: expected a time like 10s, 250ms, 1.5m or 500us"
            ))
        })
    }

    fn share(&mut self) -> Result<f64, ScriptError> {
        let w = self.next("a share like 5%")?;
        parse_share(w)
            .ok_or_else(|| self.error(format!("{w:?}: expected a percentage like 5% (0% to 100%)")))
    }

    fn node_set(&mut self) -> Result<NodeSet, ScriptError> {
        let w = self.next("a share like 5%, a count or a range like [0..10]")?;
        if let Some(share) = parse_share(w) {
            return Ok(NodeSet::Share(share));
        }
        if let Ok(k) = w.parse::<usize>() {
            return Ok(NodeSet::Count(k));
        }
        if let Some(r) = parse_range(w) {
            return Ok(NodeSet::Range(r));
        }
        Err(self.error(format!(
            "{w:?}: expected a share like 5%, a count or a range like [0..10]"
        )))
    }

    fn action(&mut self) -> Result<Action, ScriptError> {
        let w = self.next("a step")?;
        Ok(match w {
            "partition" => {
                let mut ranges = Vec::new();
                while let Some(w) = self.rest.next() {
                    ranges.push(parse_range(w).ok_or_else(|| {
                        self.error(format!("{w:?}: expected a range like [0..50] or [0%..50%]"))
                    })?);
                }
                if ranges.is_empty() {
                    return Err(self.error("expected ranges like [0%..50%] [50%..100%]".into()));
                }
                Action::Partition(ranges)
            }
            "heal" => Action::Heal,
            "crash" => Action::Crash(self.node_set()?),
            "restart" => Action::Restart(self.node_set()?),
            "jitter" => {
                let share = self.share()?;
                let delay = if share == 0.0 && self.peek().is_none() {
                    Duration::ZERO
                } else {
                    self.duration()?
                };
                Action::Jitter { share, delay }
            }
            "loss" => {
                let p = self.share()?;
                if p >= 1.0 {
                    return Err(self.error("loss must be below 100%".into()));
                }
                Action::Loss(p)
            }
            "write" => {
                let rate: f64 = self.number("a rate like 1000")?;
                if !(rate > 0.0 && rate <= 1e7) {
                    return Err(self.error(format!(
                        "rate {rate}: expected a positive number of writes per second"
                    )));
                }
                self.keyword("keys/s")?;
                self.keyword("for")?;
                let length = self.duration()?;
                if length.is_zero() {
                    return Err(self.error("the writes need a positive length".into()));
                }
                let size = if self.peek() == Some("size") {
                    self.keyword("size")?;
                    let w = self.next("a size like 32B")?;
                    w.strip_suffix('B')
                        .unwrap_or(w)
                        .parse()
                        .map_err(|_| self.error(format!("{w:?}: expected a size like 32B")))?
                } else {
                    32
                };
                Action::Write { rate, length, size }
            }
            w => {
                return Err(self.error(format!(
                    "unknown step {w:?} (expected partition, heal, crash, restart, jitter, \
                     loss, write or end)"
                )))
            }
        })
    }

    fn keyword(&mut self, k: &str) -> Result<(), ScriptError> {
        match self.rest.next() {
            Some(w) if w == k => Ok(()),
            Some(w) => Err(self.error(format!("{w:?}: expected `{k}`"))),
            None => Err(self.error(format!("expected `{k}` at the end"))),
        }
    }
}

/// `10s`, `250ms`, `500us`, `1.5m`.
fn parse_duration(w: &str) -> Option<Duration> {
    let (number, scale) = [("ms", 1e-3), ("us", 1e-6), ("s", 1.0), ("m", 60.0)]
        .into_iter()
        .find_map(|(suffix, scale)| w.strip_suffix(suffix).map(|n| (n, scale)))?;
    let x: f64 = number.parse().ok()?;
    let secs = x * scale;
    (secs.is_finite() && (0.0..=1e9).contains(&secs)).then(|| Duration::from_secs_f64(secs))
}

/// `5%`, `0.5%`, as a share in `0.0..=1.0`.
fn parse_share(w: &str) -> Option<f64> {
    let p: f64 = w.strip_suffix('%')?.parse().ok()?;
    (0.0..=100.0).contains(&p).then_some(p / 100.0)
}

/// `[0..50]` or `[0%..50%]`.
fn parse_range(w: &str) -> Option<NodeRange> {
    let inner = w.strip_prefix('[')?.strip_suffix(']')?;
    let (a, b) = inner.split_once("..")?;
    let bound = |x: &str| -> Option<Bound> {
        match parse_share(x) {
            Some(s) => Some(Bound::Share(s)),
            None => x.parse().ok().map(Bound::Index),
        }
    };
    Some(NodeRange {
        from: bound(a)?,
        to: bound(b)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_parse() {
        assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_duration("1.5m"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("10"), None);
        assert_eq!(parse_share("5%"), Some(0.05));
        assert_eq!(parse_share("150%"), None);
        assert_eq!(
            parse_range("[0%..50]"),
            Some(NodeRange {
                from: Bound::Share(0.0),
                to: Bound::Index(50)
            })
        );
    }
}
