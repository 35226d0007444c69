//! Rendering: a pure function of the state. Works at 80x24 and uses more room when there is.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Cell, Clear, Paragraph, Row, Table, Tabs, Wrap};
use tessera_core::bytes::hex_groups;
use time::OffsetDateTime;

use super::app::{Mode, Popup, Screen, SignJob, State};
use super::keymap::Action;

const OK: Style = Style::new().fg(Color::Green);
const BAD: Style = Style::new().fg(Color::Red).add_modifier(Modifier::BOLD);
const WARN: Style = Style::new().fg(Color::Yellow);
const DIM: Style = Style::new().fg(Color::DarkGray);
const TITLE: Style = Style::new().add_modifier(Modifier::BOLD);
const CURSOR: Style = Style::new().add_modifier(Modifier::REVERSED);

pub fn render(state: &State, frame: &mut Frame) {
    let [top, body, foot] = Layout::vertical([
        Constraint::Length(2),
        Constraint::Min(5),
        Constraint::Length(1),
    ])
    .areas(frame.area());
    header(state, frame, top);
    match state.screen {
        Screen::Home => home(state, frame, body),
        Screen::Keys => keys(state, frame, body),
        Screen::Attestation => attestation(state, frame, body),
        Screen::Manifest => manifest(state, frame, body),
        Screen::Provision => provision(state, frame, body),
        Screen::Patch => patch(state, frame, body),
        Screen::Transcript => transcript(state, frame, body),
    }
    footer(state, frame, foot);
    if let Some(q) = &state.qr {
        qr(q, frame, frame.area());
    }
    if let Some(v) = &state.scan {
        scan(v, frame, body);
    }
    if let Some(p) = &state.popup {
        popup(state, p, frame);
    }
}

fn header(state: &State, frame: &mut Frame, area: Rect) {
    let [line1, line2] =
        Layout::vertical([Constraint::Length(1), Constraint::Length(1)]).areas(area);
    let narrow = area.width < 100;
    let mode = match &state.config.mode {
        Mode::Production => Span::styled(" PRODUCTION: pinned AWS root ", OK),
        Mode::Dev { root_fingerprint } => Span::styled(
            if narrow {
                // Two groups are enough to tell roots apart at a glance; Home shows the rest.
                let short: String = root_fingerprint.chars().take(9).collect();
                format!(" DEV {short}, NOT AWS ")
            } else {
                format!(" DEV: root {root_fingerprint}, NOT AWS ")
            },
            Style::new()
                .fg(Color::White)
                .bg(Color::Red)
                .add_modifier(Modifier::BOLD),
        ),
    };
    let keys = state
        .device
        .as_ref()
        .filter(|d| d.software)
        .map(|_| Span::styled(" SOFTWARE KEYS ", BAD.add_modifier(Modifier::REVERSED)));
    let stamp = |t: OffsetDateTime| {
        format!(
            "{:04}-{:02}-{:02} {:02}:{:02}:{:02} UTC",
            t.year(),
            t.month() as u8,
            t.day(),
            t.hour(),
            t.minute(),
            t.second()
        )
    };
    // A validation time given by hand is not the clock: say so where the clock would be.
    let clock = match (state.config.at, state.now) {
        (Some(at), _) => Span::styled(format!(" AT {} (--at)", stamp(at)), WARN),
        (None, Some(t)) => Span::raw(format!(" {}", stamp(t))),
        (None, None) => Span::raw(" clock: …"),
    };
    let mut spans = vec![Span::styled("tessera ", TITLE), mode];
    spans.extend(keys);
    spans.push(clock);
    frame.render_widget(Paragraph::new(Line::from(spans)), line1);
    let titles: Vec<String> = Screen::ALL
        .iter()
        .enumerate()
        .map(|(i, s)| {
            if narrow {
                format!("{}{}", i + 1, s.short_title())
            } else {
                format!("{} {}", i + 1, s.title())
            }
        })
        .collect();
    let selected = Screen::ALL
        .iter()
        .position(|s| *s == state.screen)
        .unwrap_or(0);
    frame.render_widget(
        Tabs::new(titles)
            .select(selected)
            .highlight_style(Style::new().add_modifier(Modifier::REVERSED))
            .divider("|")
            .padding(if narrow { "" } else { " " }, if narrow { "" } else { " " }),
        line2,
    );
}

fn footer(state: &State, frame: &mut Frame, area: Rect) {
    let km = &state.config.keymap;
    let mut hints = format!(
        "{} help  {} quit  Tab screens",
        km.hint(Action::Help),
        km.hint(Action::Quit)
    );
    let extra = match state.screen {
        Screen::Home => format!(
            "  ↑↓ select  Enter open  {} rescan  {} confirm clock",
            km.hint(Action::Rescan),
            km.hint(Action::ConfirmClock)
        ),
        Screen::Manifest => format!(
            "  {} approve  {} whole value",
            km.hint(Action::Approve),
            km.hint(Action::Open)
        ),
        Screen::Attestation => format!("  {} whole value", km.hint(Action::Open)),
        Screen::Patch => format!("  {} approve", km.hint(Action::Approve)),
        Screen::Keys => format!(
            "  {} export  {} QR  {} PIN  {} PUK  {} provision",
            km.hint(Action::Export),
            km.hint(Action::ShowQr),
            km.hint(Action::ChangePin),
            km.hint(Action::ChangePuk),
            km.hint(Action::Provision)
        ),
        Screen::Provision => format!(
            "  {} hand over share  {} show as QR",
            km.hint(Action::Approve),
            km.hint(Action::ShowQr)
        ),
        Screen::Transcript => String::new(),
    };
    hints.push_str(&extra);
    // The status gets what the hints leave, shortened visibly; the whole text was in the
    // message that announced it.
    let room = usize::from(area.width).saturating_sub(hints.chars().count() + 2);
    let status = state.status.lines().next().unwrap_or_default();
    let line = match &state.busy {
        Some(b) => Line::from(Span::styled(
            ellipsize(&format!("… {b}"), usize::from(area.width)),
            WARN,
        )),
        None if !status.is_empty() && room >= 12 => Line::from(vec![
            Span::styled(hints, DIM),
            Span::raw("  "),
            Span::raw(ellipsize(status, room)),
        ]),
        None => Line::from(Span::styled(hints, DIM)),
    };
    frame.render_widget(Paragraph::new(line), area);
}

fn block(title: &str) -> Block<'static> {
    Block::bordered().title(Span::styled(format!(" {title} "), TITLE))
}

/// The member's namespace pins, each as verified under the device's Manifest key.
fn pin_lines(state: &State, full: bool) -> Vec<Line<'static>> {
    let Some(pins) = &state.pins else {
        return vec![Line::from(Span::styled(
            "Pins: waiting for the key device",
            DIM,
        ))];
    };
    if pins.is_empty() {
        return vec![Line::from(Span::styled(
            "Pins: none yet (genesis verify or a first approval records one)",
            WARN,
        ))];
    }
    pins.iter()
        .map(|(path, r)| match r {
            Ok(p) if full => Line::from(vec![
                Span::styled("Pin ", OK),
                Span::raw(format!(
                    "{} (#{}; PCRs: {})",
                    p.summary(),
                    p.sequence,
                    p.pcr_policy.describe()
                )),
            ]),
            Ok(p) => Line::from(vec![
                Span::styled("Pin ", OK),
                Span::raw(format!(
                    "{}: set {} of {}, {}",
                    p.namespace,
                    p.manifest_set.threshold,
                    p.manifest_set.members.len(),
                    p.highest.map_or_else(
                        || "no manifest".to_owned(),
                        |h| format!("nonce {}", h.nonce)
                    )
                )),
            ]),
            Err(e) => Line::from(Span::styled(
                format!(
                    "Pin REFUSED {}: {e}",
                    path.file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default()
                ),
                BAD,
            )),
        })
        .collect()
}

fn home(state: &State, frame: &mut Frame, area: Rect) {
    let pins = pin_lines(state, false);
    let extra = u16::try_from(pins.len().min(3)).unwrap_or(3);
    let [top, bottom] =
        Layout::vertical([Constraint::Length(7 + extra), Constraint::Min(3)]).areas(area);
    let [left, right] =
        Layout::horizontal([Constraint::Percentage(50), Constraint::Percentage(50)]).areas(top);
    let mut lines = Vec::new();
    lines.push(match (state.now, state.clock_confirmed) {
        (None, _) => Line::from(Span::styled("Clock: waiting", WARN)),
        (Some(_), true) => Line::from(Span::styled("Clock: confirmed by you (UTC above)", OK)),
        (Some(_), false) => Line::from(Span::styled(
            "Clock: check the UTC time above, press c",
            WARN,
        )),
    });
    if let Some(at) = state.config.at {
        lines.push(Line::from(Span::styled(
            format!("Validating at {at} (--at)"),
            WARN,
        )));
    }
    lines.push(if state.network.is_empty() {
        Line::from(Span::styled("Air gap: no network interface up", OK))
    } else {
        Line::from(Span::styled(
            format!("Air gap: WARNING, up: {}", state.network.join(", ")),
            BAD,
        ))
    });
    lines.push(Line::from(format!(
        "Bundles from: {}",
        state.config.bundle_dir.display()
    )));
    if let Some(s) = &state.config.share_path {
        lines.push(Line::from(format!("Your share: {}", s.display())));
    }
    lines.extend(pins.into_iter().take(3));
    frame.render_widget(
        Paragraph::new(lines)
            .block(block("This laptop"))
            .wrap(Wrap { trim: true }),
        left,
    );
    frame.render_widget(
        Paragraph::new(device_lines(state, false))
            .block(block("Key device"))
            .wrap(Wrap { trim: true }),
        right,
    );

    let rows: Vec<Row> = state
        .bundles
        .iter()
        .enumerate()
        .map(|(i, b)| {
            let style = if i == state.selected {
                Style::new().add_modifier(Modifier::REVERSED)
            } else {
                Style::new()
            };
            Row::new(vec![
                Cell::from(b.summary.clone()),
                Cell::from(
                    b.path
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default(),
                ),
            ])
            .style(style)
        })
        .collect();
    let table = if rows.is_empty() {
        Table::new(
            vec![Row::new(vec![Cell::from(Span::styled(
                "no bundles found; r to rescan",
                DIM,
            ))])],
            [Constraint::Min(10)],
        )
    } else {
        Table::new(
            rows,
            [Constraint::Percentage(60), Constraint::Percentage(40)],
        )
    };
    frame.render_widget(table.block(block("Bundles")), bottom);
}

fn device_lines(state: &State, full: bool) -> Vec<Line<'static>> {
    let Some(d) = &state.device else {
        return vec![Line::from(Span::styled(
            "No key device: start with --serial N or --software FILE",
            WARN,
        ))];
    };
    let mut lines = vec![Line::from(Span::styled(
        d.label.clone(),
        if d.software { WARN } else { OK },
    ))];
    if let Some(e) = &d.error {
        lines.push(Line::from(Span::styled(e.clone(), BAD)));
    }
    for (role, fp, recipient) in &d.keys {
        lines.push(Line::from(format!("{role:<9}{fp}")));
        if full {
            lines.push(Line::from(Span::styled(
                format!("         {recipient}"),
                DIM,
            )));
        }
    }
    lines
}

fn keys(state: &State, frame: &mut Frame, area: Rect) {
    let mut lines = device_lines(state, true);
    lines.push(Line::from(""));
    lines.extend(pin_lines(state, true));
    lines.push(Line::from(""));
    lines.push(Line::from(
        "e  write your member descriptor to the bundle folder (then v shows it as QR)",
    ));
    lines.push(Line::from(
        "p  change your YubiKey PIN (current PIN, then the new one twice)",
    ));
    if let Some(d) = &state.descriptor {
        lines.push(Line::from(Span::styled(
            format!("descriptor written: {}", d.display()),
            OK,
        )));
    }
    lines.push(Line::from(Span::styled(
        format!(
            "{} provisions a fresh YubiKey after showing its plan; replacing keys already there is only `tessera key provision --force`",
            state.config.keymap.hint(Action::Provision)
        ),
        DIM,
    )));
    frame.render_widget(
        Paragraph::new(lines)
            .block(block("Keys"))
            .wrap(Wrap { trim: false }),
        area,
    );
}

/// A sentence with its long hex values shortened (the Attestation and Manifest rows hold them
/// whole), so none is split across lines.
fn brief(s: &str) -> String {
    s.split(' ')
        .map(|w| {
            let hex = w.trim_end_matches([',', '.', ':', ';', ')']);
            if hex.len() > 16 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                format!("{}…{}", &hex[..16], &w[hex.len()..])
            } else {
                w.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn verdict_line(v: &Result<String, String>) -> Line<'static> {
    match v {
        Ok(s) => Line::from(Span::styled(format!("VALID  {}", brief(s)), OK)),
        Err(e) => Line::from(Span::styled(format!("REFUSED  {}", brief(e)), BAD)),
    }
}

fn attestation(state: &State, frame: &mut Frame, area: Rect) {
    let Some(a) = &state.attestation else {
        frame.render_widget(Paragraph::new("No attestation document open: open a request bundle or a document (`tessera open FILE`).").block(block("Attestation")).wrap(Wrap { trim: true }), area);
        return;
    };
    let [v, list] = Layout::vertical([Constraint::Length(4), Constraint::Min(3)]).areas(area);
    let reproduced = state.config.reproduced.as_ref().map_or_else(
        || "reproduced PCRs: none given".to_owned(),
        |r| format!("reproduced PCRs: {}", r.source.describe()),
    );
    frame.render_widget(
        Paragraph::new(vec![verdict_line(&a.verdict), Line::from(reproduced)])
            .block(block("Attestation"))
            .wrap(Wrap { trim: true }),
        v,
    );
    let rows = a.detail_rows();
    let on_screen = usize::from(list.height.saturating_sub(2)).max(1);
    let top = a.cursor.fitted(rows.len(), on_screen).top;
    let end = (top + on_screen).min(rows.len());
    // Label 19, status 14, two column gaps and the borders: the value gets the rest, which
    // holds a whole 96-digit PCR from 133 columns on.
    let value_width = usize::from(list.width.saturating_sub(37)).max(8);
    let body: Vec<Row> = rows[top..end]
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let status = r.status.as_ref().map_or_else(
                || Cell::from(""),
                |(w, t)| Cell::from(Span::styled(w.clone(), tone(*t))),
            );
            let row = Row::new(vec![
                Cell::from(r.label.clone()),
                Cell::from(ellipsize(&r.value, value_width)),
                status,
            ]);
            if top + i == a.cursor.at {
                row.style(CURSOR)
            } else {
                row
            }
        })
        .collect();
    let title = format!(
        "Rows {}-{} of {}{}  Enter: whole value",
        top + 1,
        end,
        rows.len(),
        more_marker(top, end, rows.len())
    );
    frame.render_widget(
        Table::new(
            body,
            [
                Constraint::Length(19),
                Constraint::Min(8),
                Constraint::Length(14),
            ],
        )
        .block(block(&title)),
        list,
    );
}

fn tone(t: super::app::Tone) -> Style {
    match t {
        super::app::Tone::Good => OK,
        super::app::Tone::Bad => BAD,
        super::app::Tone::Quiet => DIM,
    }
}

/// Where more rows are: a list title's hint that the screen does not show everything.
fn more_marker(top: usize, end: usize, len: usize) -> &'static str {
    match (top > 0, end < len) {
        (true, true) => "  ↑↓ more",
        (false, true) => "  ↓ more (j/k)",
        (true, false) => "  ↑ more",
        (false, false) => "",
    }
}

/// The member layer's review, one line per check; refusals carry their next step.
fn review_lines(r: &crate::member::review::Review) -> Vec<Line<'static>> {
    use crate::member::review::Verdict;
    let mut out = Vec::new();
    for c in &r.checks {
        let (mark, style) = match c.verdict {
            Verdict::Pass => ("✓ ", OK),
            Verdict::Warn => ("! ", WARN),
            Verdict::Fail => ("✗ ", BAD),
        };
        out.push(Line::from(vec![
            Span::styled(mark, style),
            Span::styled(format!("{}: ", c.label), TITLE),
            Span::styled(
                brief(&c.detail),
                if c.verdict == Verdict::Pass {
                    Style::new()
                } else {
                    style
                },
            ),
        ]));
        if c.verdict == Verdict::Fail
            && let Some(n) = &c.next
        {
            out.push(Line::from(Span::styled(
                format!("  next: {}", brief(n)),
                WARN,
            )));
        }
    }
    out
}

/// The review's per-member YubiKey lines: mark, style and text.
fn member_key_lines(r: &crate::member::review::Review) -> Vec<(&'static str, Style, String)> {
    use crate::member::review::{MEMBER_KEYS, Verdict};
    r.checks
        .iter()
        .filter(|c| c.label == MEMBER_KEYS)
        .map(|c| match c.verdict {
            Verdict::Pass => ("✓ ", Style::new(), c.detail.clone()),
            Verdict::Warn => ("! ", WARN, c.detail.clone()),
            Verdict::Fail => ("✗ ", BAD, c.detail.clone()),
        })
        .collect()
}

fn manifest(state: &State, frame: &mut Frame, area: Rect) {
    let Some(r) = &state.manifest else {
        frame.render_widget(
            Paragraph::new("No manifest open: select a manifest bundle on Home.")
                .block(block("Manifest")),
            area,
        );
        return;
    };
    // The box's height comes from the state, as the field rows marked seen do.
    let member_keys = r.review.as_ref().map(member_key_lines).unwrap_or_default();
    let keys_height = state.member_keys_height();
    let [head, body, keys] = Layout::vertical([
        Constraint::Length(4),
        Constraint::Min(3),
        Constraint::Length(keys_height),
    ])
    .areas(area);
    if keys_height > 0 {
        let width = usize::from(keys.width.saturating_sub(4)).max(8);
        let lines: Vec<Line> = member_keys
            .into_iter()
            .map(|(mark, style, text)| {
                Line::from(vec![
                    Span::styled(mark, style),
                    Span::styled(ellipsize(&text, width), style),
                ])
            })
            .collect();
        frame.render_widget(
            Paragraph::new(lines).block(block("Member keys (YubiKey attestation)")),
            keys,
        );
    }
    let mut lines = vec![Line::from(format!(
        "{} nonce {}  hash {}",
        r.manifest.namespace.name,
        r.manifest.namespace.nonce,
        hex_groups(&r.hash.0[..8])
    ))];
    lines.push(match (r.blocked(), r.previous_nonce) {
        (Some(b), _) => Line::from(Span::styled(
            format!("CANNOT APPROVE: {}", b.lines().next().unwrap_or_default()),
            BAD,
        )),
        (None, Some(p)) => Line::from(Span::styled(
            format!("diff against your last approval (nonce {p}): ~ changed, + added"),
            WARN,
        )),
        (None, None) => Line::from(Span::styled(
            "no earlier approval for this namespace on this laptop",
            DIM,
        )),
    });
    if let Some(a) = &r.approvals {
        lines.push(Line::from(a.clone()));
    }
    frame.render_widget(
        Paragraph::new(lines)
            .block(block("Manifest review"))
            .wrap(Wrap { trim: true }),
        head,
    );
    let value_width = usize::from(body.width.saturating_sub(40)).max(8);
    let rows_on_screen = usize::from(body.height.saturating_sub(2)).max(1);
    let top = r.cursor.top.min(r.fields.len());
    let end = (top + rows_on_screen).min(r.fields.len());
    let rows: Vec<Row> = r.fields[top..end]
        .iter()
        .enumerate()
        .map(|(i, (mark, k, v))| {
            let style = if *mark == ' ' { Style::new() } else { WARN };
            let style = if top + i == r.cursor.at {
                style.patch(CURSOR)
            } else {
                style
            };
            Row::new(vec![
                Cell::from(mark.to_string()),
                Cell::from(k.clone()),
                Cell::from(ellipsize(v, value_width)),
            ])
            .style(style)
        })
        .collect();
    let more = more_marker(top, end, r.fields.len());
    let unseen = r.unseen_changes();
    let title = format!(
        "Fields {}-{} of {}{more}{}",
        top + 1,
        end,
        r.fields.len(),
        if unseen > 0 {
            format!("  {unseen} changes not yet seen")
        } else {
            String::new()
        }
    );
    frame.render_widget(
        Table::new(
            rows,
            [
                Constraint::Length(1),
                Constraint::Length(34),
                Constraint::Min(8),
            ],
        )
        .block(block(&title)),
        body,
    );
}

/// `text` cut to `width` characters with an ellipsis, never inside a multi-byte character.
fn ellipsize(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        return text.to_owned();
    }
    let mut out: String = text.chars().take(width.saturating_sub(1)).collect();
    out.push('…');
    out
}

fn step(ok: Result<&str, &str>, text: &str) -> Line<'static> {
    match ok {
        Ok(detail) => Line::from(vec![
            Span::styled("✓ ", OK),
            Span::raw(format!("{text}: {detail}")),
        ]),
        Err(detail) => Line::from(vec![
            Span::styled("✗ ", BAD),
            Span::raw(format!("{text}: ")),
            Span::styled(detail.to_owned(), BAD),
        ]),
    }
}

fn provision(state: &State, frame: &mut Frame, area: Rect) {
    let Some(w) = &state.provision else {
        frame.render_widget(
            Paragraph::new("No request open: select a request bundle on Home.")
                .block(block("Provision")),
            area,
        );
        return;
    };
    let m = &w.request.envelope.manifest;
    let mut lines = vec![
        Line::from(format!(
            "Request {}  namespace {} nonce {}  manifest {}",
            w.request_path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            m.namespace.name,
            m.namespace.nonce,
            hex_groups(&w.manifest_hash.0[..8])
        )),
        Line::from(""),
    ];
    match &w.review {
        Some(r) => lines.extend(review_lines(r)),
        None => lines.push(Line::from(Span::styled(
            "waiting for the key device and the clock",
            DIM,
        ))),
    }
    let share = w.share_path.as_ref().map(|p| p.display().to_string());
    lines.push(step(
        share
            .as_deref()
            .ok_or("none: start with --share FILE or put it in the bundle folder"),
        "your encrypted share",
    ));
    match &w.result {
        None => lines.push(Line::from(Span::styled("hand over: press the approve key; you will type the confirmation code the coordinator announced, then your PIN", DIM))),
        Some(r) => lines.push(step(r.as_deref().map_err(String::as_str), "share bundle")),
    }
    frame.render_widget(
        Paragraph::new(lines)
            .block(block("Provision"))
            .wrap(Wrap { trim: true }),
        area,
    );
}

fn patch(state: &State, frame: &mut Frame, area: Rect) {
    let Some(p) = &state.patch else {
        frame.render_widget(
            Paragraph::new("No patch open: select a patch bundle on Home.").block(block("Patch")),
            area,
        );
        return;
    };
    // The hash, never the confirmation code: the code must come from the coordinator.
    let mut lines = vec![
        Line::from(format!(
            "{} sequence {}  patch {}",
            p.envelope.patch.namespace,
            p.envelope.patch.sequence,
            hex_groups(&p.hash.0[..8])
        )),
        Line::from(format!(
            "for manifest {}  {} approvals so far",
            hex_groups(&p.envelope.patch.manifest_hash.0[..8]),
            p.envelope.approvals.len()
        )),
        Line::from(Span::styled(
            if p.baseline == 0 {
                "no earlier patch of this manifest on this laptop: values shown as set".to_owned()
            } else {
                format!(
                    "against {} earlier patch(es) of this manifest: ~ changed (old -> new), + new",
                    p.baseline
                )
            },
            if p.baseline == 0 { DIM } else { WARN },
        )),
        Line::from(""),
    ];
    for (mark, k, v) in &p.fields {
        let style = if *mark == ' ' { Style::new() } else { WARN };
        lines.push(Line::from(Span::styled(format!("{mark} {k} = {v}"), style)));
    }
    frame.render_widget(
        Paragraph::new(lines)
            .block(block("Patch review"))
            .wrap(Wrap { trim: false }),
        area,
    );
}

fn transcript(state: &State, frame: &mut Frame, area: Rect) {
    let height = usize::from(area.height.saturating_sub(2));
    let start = state.transcript.len().saturating_sub(height);
    let lines: Vec<Line> = state.transcript[start..]
        .iter()
        .map(|l| Line::from(l.clone()))
        .collect();
    let lines = if lines.is_empty() {
        vec![Line::from(Span::styled(
            "nothing recorded yet in this session",
            DIM,
        ))]
    } else {
        lines
    };
    frame.render_widget(
        Paragraph::new(lines).block(block("Ceremony transcript (this session)")),
        area,
    );
}

/// The current frame, dark modules on a light background whatever the terminal's theme.
fn qr(q: &super::app::QrView, frame: &mut Frame, area: Rect) {
    frame.render_widget(Clear, area);
    let state = if q.paused {
        "PAUSED".to_owned()
    } else {
        format!("{}fps", q.fps)
    };
    let title = if area.width < 100 {
        // Frame, state and the key to every other key: nothing is cut off at 80 columns.
        format!(
            " {}/{} (any {}) {state} {}B  ? keys  Esc close ",
            q.index + 1,
            q.parts.len(),
            q.minimal,
            q.fragment
        )
    } else {
        format!(
            " {}  frame {} of {} (any {} suffice)  {state}  {} B/frame  Space pause  n/p step  +/- speed  [/] density  ? keys  Esc close ",
            q.title,
            q.index + 1,
            q.parts.len(),
            q.minimal,
            q.fragment
        )
    };
    let block = Block::bordered().title(Span::styled(title, TITLE));
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let lines = q
        .parts
        .get(q.index)
        .and_then(|p| airgap_bundle::qr::QrFrame::encode(p).ok())
        .and_then(|f| f.terminal_lines(usize::from(inner.width), usize::from(inner.height)));
    let paper = Style::new().fg(Color::Black).bg(Color::White);
    match lines {
        Some(lines) => {
            let w = lines.first().map_or(0, |l| l.chars().count()) as u16;
            let h = lines.len() as u16;
            let r = centered(inner, w, h);
            frame.render_widget(Paragraph::new(lines.into_iter().map(Line::from).collect::<Vec<_>>()).style(paper), r);
        }
        None => frame.render_widget(
            Paragraph::new("The terminal is too small for this QR code: enlarge the window or use the USB file.").style(BAD).wrap(Wrap { trim: true }),
            inner,
        ),
    }
}

/// The Scan screen, over the body: progress, counts and the kind once the first fragment
/// names it (marked unverified until the whole bundle has passed its checks).
fn scan(v: &super::app::ScanView, frame: &mut Frame, area: Rect) {
    frame.render_widget(Clear, area);
    let s = &v.status;
    let block = block("Scan a bundle's QR code");
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let width = usize::from(inner.width.saturating_sub(2)).min(60);
    let filled = (s.percent() * width / 100).min(width);
    let source = if v.source.is_empty() {
        "opening the frame source…".to_owned()
    } else {
        v.source.clone()
    };
    let kind = match s.kind {
        Some(k) if s.progress.complete => format!("{k} bundle ({})", k.description()),
        Some(k) => format!("{k} bundle (unverified until complete)"),
        None => "not known yet (named by the first fragment)".to_owned(),
    };
    let mut lines = vec![
        Line::from(vec![
            Span::styled("Reading  ", DIM),
            Span::raw(ellipsize(
                &source,
                usize::from(inner.width).saturating_sub(9),
            )),
        ]),
        Line::from(""),
        Line::from(Span::styled(s.progress_line(), TITLE)),
        Line::from(vec![
            Span::styled("█".repeat(filled), OK),
            Span::styled("░".repeat(width - filled), DIM),
        ]),
        Line::from(""),
        Line::from(vec![Span::styled("Bundle   ", DIM), Span::raw(kind)]),
        Line::from(vec![
            Span::styled("Frames   ", DIM),
            Span::raw(format!(
                "{} read, {} without a readable code",
                s.frames, s.missed
            )),
        ]),
        Line::from(vec![
            Span::styled("Parts    ", DIM),
            Span::raw(format!("{} taken", s.parts_seen)),
        ]),
        Line::from(vec![
            Span::styled("Rejected ", DIM),
            Span::styled(
                s.rejected_line(),
                if s.rejected.is_empty() {
                    Style::new()
                } else {
                    WARN
                },
            ),
        ]),
    ];
    if s.restarts > 0 {
        lines.push(Line::from(Span::styled(
            format!(
                "Started over {} time(s): the parts did not fit together",
                s.restarts
            ),
            WARN,
        )));
    }
    if let Some(last) = &s.last_rejection {
        lines.push(Line::from(Span::styled(format!("Last: {last}"), DIM)));
    }
    lines.push(Line::from(""));
    match &v.failed {
        Some(why) => lines.push(Line::from(Span::styled(format!("Stopped: {why}"), BAD))),
        None => lines.push(Line::from(Span::styled(
            "Hold the other screen's animated QR code in front of the camera. The bundle opens by itself once whole and checked.",
            DIM,
        ))),
    }
    lines.push(Line::from(Span::styled("Esc stop", DIM)));
    frame.render_widget(Paragraph::new(lines).wrap(Wrap { trim: false }), inner);
}

fn centered(area: Rect, w: u16, h: u16) -> Rect {
    let w = w.min(area.width);
    let h = h.min(area.height);
    Rect {
        x: area.x + (area.width - w) / 2,
        y: area.y + (area.height - h) / 2,
        width: w,
        height: h,
    }
}

fn popup(state: &State, p: &Popup, frame: &mut Frame) {
    let area = frame.area();
    let (title, lines, style): (&str, Vec<Line>, Style) = match p {
        Popup::Help => ("Keys", help_lines(state), Style::new()),
        Popup::Message { title, body, error } => (
            title.as_str(),
            body.lines()
                .map(|l| Line::from(l.to_owned()))
                .chain([
                    Line::from(""),
                    Line::from(Span::styled("Enter or Esc to close", DIM)),
                ])
                .collect(),
            if *error { BAD } else { OK },
        ),
        Popup::QuitConfirm => (
            "Quit?",
            vec![
                Line::from("Work is in progress with your key device."),
                Line::from("Quit anyway? y / any other key to stay"),
            ],
            WARN,
        ),
        Popup::Touch { purpose } => (
            "Touch your YubiKey",
            vec![
                Line::from(Span::styled("Touch your YubiKey now", WARN)),
                Line::from(purpose.clone()),
            ],
            WARN,
        ),
        Popup::Pin {
            secret,
            purpose,
            tries_left,
            typed_len,
            warning,
        } => {
            let mut l = vec![
                Line::from(format!("Your YubiKey {secret}, to {purpose}")),
                Line::from(""),
            ];
            l.push(Line::from(format!("{secret}: {}", "•".repeat(*typed_len))));
            if let Some(t) = tries_left {
                let blocks = if secret.contains("PUK") { "PUK" } else { "PIN" };
                l.push(Line::from(Span::styled(
                    format!("{t} tries left before the {blocks} blocks"),
                    if *t <= 1 { BAD } else { WARN },
                )));
            }
            if let Some(w) = warning {
                l.push(Line::from(Span::styled(w.clone(), BAD)));
            }
            l.push(Line::from(Span::styled("Enter submit  Esc cancel", DIM)));
            (secret.as_str(), l, Style::new())
        }
        Popup::Confirm {
            job,
            typed,
            mismatch,
        } => {
            let mut l: Vec<Line> = job
                .describe()
                .lines()
                .map(|s| Line::from(s.to_owned()))
                .collect();
            l.push(Line::from(""));
            if let SignJob::Provision { .. } = job {
                // No coordinator announces a plan: the code shown is typed back to confirm.
                l.push(Line::from(vec![
                    Span::raw("Type "),
                    Span::styled(crate::member::confirm_code(&job.object_hash()), TITLE),
                    Span::raw(" to proceed:"),
                ]));
            } else {
                l.push(Line::from(
                    "Type the confirmation code the coordinator announced (16 hex digits):",
                ));
            }
            l.push(Line::from(format!("> {typed}")));
            if *mismatch {
                l.push(Line::from(Span::styled(
                    "code does not match: this is not the announced object, or a typo",
                    BAD,
                )));
            }
            let nothing = if matches!(job, SignJob::Provision { .. }) {
                "the YubiKey is not changed"
            } else {
                "nothing is signed"
            };
            l.push(Line::from(Span::styled(
                format!("Enter confirm  Esc abort ({nothing})"),
                DIM,
            )));
            ("Confirm", l, WARN)
        }
    };
    let w = (area.width.saturating_sub(4)).min(100);
    let h = wrapped_height(&lines, w.saturating_sub(2))
        .saturating_add(2)
        .min(area.height);
    let r = centered(area, w, h);
    frame.render_widget(Clear, r);
    frame.render_widget(
        Paragraph::new(lines)
            .block(
                Block::bordered()
                    .title(Span::styled(format!(" {title} "), TITLE))
                    .border_style(style),
            )
            .wrap(Wrap { trim: false }),
        r,
    );
}

/// Rows `lines` take when word-wrapped to `width` columns, so a popup is tall enough for its
/// last line (the confirmation prompt) however long the lines above it are.
fn wrapped_height(lines: &[Line], width: u16) -> u16 {
    let width = usize::from(width.max(1));
    let rows: usize = lines
        .iter()
        .map(|line| {
            let text: String = line.spans.iter().map(|s| s.content.as_ref()).collect();
            let (mut rows, mut used) = (1, 0);
            for word in text.split(' ') {
                let w = word.chars().count();
                let need = if used == 0 { w } else { used + 1 + w };
                if need <= width {
                    used = need;
                } else {
                    // A word longer than the line is broken across rows.
                    rows += usize::from(used > 0) + (w.saturating_sub(1)) / width;
                    used = (w.saturating_sub(1)) % width + 1;
                }
            }
            rows
        })
        .sum();
    u16::try_from(rows).unwrap_or(u16::MAX)
}

fn help_lines(state: &State) -> Vec<Line<'static>> {
    let km = &state.config.keymap;
    if state.scan.is_some() {
        return [
            "The Scan screen (these keys are fixed):",
            "Esc q      stop scanning; nothing read is kept",
            "",
            "? or Esc closes this list",
        ]
        .into_iter()
        .map(Line::from)
        .collect();
    }
    if state.qr.is_some() {
        return [
            "The QR view (these keys are fixed):",
            "Space      pause or resume the animation",
            "n/p ↓/↑    step one frame forward or back (pauses)",
            "+/-        faster or slower",
            "[/]        fewer or more bytes per frame: [ makes",
            "           larger modules for a poor camera",
            "Esc q Enter  close the QR view",
            "",
            "? or Esc closes this list",
        ]
        .into_iter()
        .map(Line::from)
        .collect();
    }
    let mut l = vec![
        Line::from("1-7 / Tab / S-Tab   switch screens"),
        Line::from(format!(
            "{:<19} help      {} quit",
            km.hint(Action::Help),
            km.hint(Action::Quit)
        )),
    ];
    let list = format!(
        "{}/{} or ↓/↑ move, {}/{} a page, {} the whole value",
        km.hint(Action::Down),
        km.hint(Action::Up),
        km.hint(Action::PageDown),
        km.hint(Action::PageUp),
        km.hint(Action::Open)
    );
    let specific = match state.screen {
        Screen::Home => format!(
            "↑↓ select a bundle, Enter open, {} rescan, {} confirm the clock\n{} scan a bundle's animated QR code with the camera",
            km.hint(Action::Rescan),
            km.hint(Action::ConfirmClock),
            km.hint(Action::Scan)
        ),
        Screen::Manifest => format!(
            "{list}\n{} approve with your Manifest key (then type the code, then the PIN)",
            km.hint(Action::Approve)
        ),
        Screen::Attestation => list,
        Screen::Provision => format!(
            "{} hand over your share (then type the code, then the PIN)\n{} show the share bundle as QR once written",
            km.hint(Action::Approve),
            km.hint(Action::ShowQr)
        ),
        Screen::Patch => format!("{} approve with your Patch key", km.hint(Action::Approve)),
        Screen::Keys => format!(
            "{} export your member descriptor, {} show it as QR\n{} change the PIN, {} change the PUK\n{} provision a fresh YubiKey (review the plan, then type the code)",
            km.hint(Action::Export),
            km.hint(Action::ShowQr),
            km.hint(Action::ChangePin),
            km.hint(Action::ChangePuk),
            km.hint(Action::Provision)
        ),
        Screen::Transcript => "read only".to_owned(),
    };
    l.extend(specific.lines().map(|line| Line::from(line.to_owned())));
    for fixed in [
        "Popups (fixed keys):",
        " code: type it, Enter confirms, Esc aborts",
        " PIN: type it (never shown), Enter submits, Esc cancels",
        " message: Enter or Esc closes",
        " busy: q asks before quitting; y quits",
    ] {
        l.push(Line::from(fixed));
    }
    l
}
