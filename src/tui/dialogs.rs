//! The boxes drawn over the main screen: the credential guard's dialog, the pasted-group
//! dialog, the help and the certificate chain.
//!
//! Each box is as tall as its text wrapped to the screen's width, down to 60 columns. What must
//! never be lost stays in view: the guard dialog's choices and the `override:` field with what
//! the user typed (its explanation gives way first, marked, on a screen too small for it), and
//! the help and certificate views scroll with the lines left named in their bottom border.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::Line;
use ratatui::widgets::{Block, Clear, Paragraph};

use super::app::{App, Mode};
use super::commands;
use super::ui::Theme;
use super::wrap::wrap_styled;
use crate::guard::Refusal;
use crate::proto::escape::escape_str;
use crate::tls::Verification;

/// The widest a box gets, borders included.
const BOX_WIDTH: u16 = 78;
/// The guard dialog is narrower, so the panes' edges stay visible around it.
const GUARD_WIDTH: u16 = 76;

/// A box of `width` and `height` cells in the middle of `area` (no larger than it).
pub fn centered(area: Rect, width: u16, height: u16) -> Rect {
    let width = width.min(area.width);
    let height = height.min(area.height);
    Rect {
        x: area.x + (area.width - width) / 2,
        y: area.y + (area.height - height) / 2,
        width,
        height,
    }
}

/// The lines the help adds (at its top) for the standing overrides given on the command line,
/// which change what the guard does (the last lines of [`commands::help_lines`] describe it
/// without them).
pub fn help_overrides(app: &App) -> Vec<&'static str> {
    let mut lines = Vec::new();
    if app.policy.allow_cleartext_auth {
        lines.push("--allow-cleartext-auth is ON: AUTH is NOT stopped without TLS.");
    }
    if app.policy.allow_unverified_auth {
        lines.push("--insecure is ON: AUTH is NOT stopped by an unverified certificate.");
    }
    lines
}

/// Draws `lines` in a bordered box over `area`, scrolled by `scroll` rows (clamped), with the
/// rows above and below named in the bottom border and the keys that reach them.
fn scrolled_box(
    frame: &mut Frame,
    area: Rect,
    title: &str,
    lines: Vec<Line<'static>>,
    scroll: usize,
    border: Style,
) {
    let height = (lines.len() as u16 + 2).min(area.height);
    let width = area.width.min(BOX_WIDTH);
    let rect = centered(area, width, height.max(3));
    let inner = rect.height.saturating_sub(2) as usize;
    let top = scroll.min(lines.len().saturating_sub(inner));
    let below = lines.len().saturating_sub(top + inner);
    let mut block = Block::bordered()
        .title(title.to_owned())
        .border_style(border);
    let footer = match (top, below) {
        (0, 0) => None,
        (0, below) => Some(format!(" {below} more below: PgDn ")),
        (_, 0) => Some(" PgUp: back up ".to_owned()),
        (_, below) => Some(format!(" PgUp / PgDn: {below} more below ")),
    };
    if let Some(footer) = footer {
        block = block.title_bottom(footer);
    }
    frame.render_widget(Clear, rect);
    let shown: Vec<Line> = lines.into_iter().skip(top).take(inner).collect();
    frame.render_widget(Paragraph::new(shown).block(block), rect);
}

/// The inner width of a box over `area`.
fn inner_width(area: Rect) -> usize {
    area.width.min(BOX_WIDTH).saturating_sub(2) as usize
}

/// Draws the help: the key list in two columns where they fit, in one otherwise.
pub fn render_help(app: &App, frame: &mut Frame, area: Rect) {
    let theme = Theme::new(app.colour);
    let width = inner_width(area);
    // The standing overrides first: they change what the guard does.
    let mut lines: Vec<Line<'static>> = help_overrides(app)
        .into_iter()
        .flat_map(|line| wrap_styled(line, theme.alarm(), width))
        .collect();
    lines.extend(
        commands::help_lines_for(width)
            .iter()
            .flat_map(|line| wrap_styled(line, Style::new(), width)),
    );
    scrolled_box(
        frame,
        area,
        " help (Esc closes) ",
        lines,
        app.overlay_scroll,
        Style::new(),
    );
}

/// Draws the certificate chain of the TLS session.
pub fn render_certificate(app: &App, frame: &mut Frame, area: Rect, theme: Theme) {
    let width = inner_width(area);
    let plain = |text: String| wrap_styled(&text, Style::new(), width);
    let mut lines: Vec<Line<'static>> = Vec::new();
    match &app.status.tls {
        None => lines.extend(plain(
            "No TLS session: send STARTTLS (or connect with --tls implicit).".to_owned(),
        )),
        Some(info) => {
            lines.extend(plain(format!(
                "{} {} {} server name {}",
                info.version,
                info.cipher_suite,
                info.key_exchange.as_deref().unwrap_or(""),
                info.server_name
            )));
            let against = if info.anchors.is_empty() {
                String::new()
            } else {
                format!(" against {}", info.anchors)
            };
            match &info.verification {
                Verification::Verified => lines.extend(wrap_styled(
                    &format!("certificate verified{against}"),
                    theme.fg(Color::Green).add_modifier(Modifier::BOLD),
                    width,
                )),
                Verification::Failed(problem) => lines.extend(wrap_styled(
                    &format!("CERTIFICATE NOT VERIFIED: {problem}"),
                    theme.alarm(),
                    width,
                )),
            }
            for (index, cert) in info.chain.iter().enumerate() {
                lines.push(Line::default());
                lines.push(Line::styled(
                    format!("[{index}] {}", if index == 0 { "leaf" } else { "chain" }),
                    Style::new().add_modifier(Modifier::BOLD),
                ));
                if let Some(error) = &cert.parse_error {
                    lines.extend(plain(format!("  unparsable: {error}")));
                    continue;
                }
                for (label, value) in [
                    ("subject", escape_str(&cert.subject)),
                    ("issuer", escape_str(&cert.issuer)),
                    ("names", escape_str(&cert.sans.join(", "))),
                    ("valid from", cert.not_before.clone()),
                    (
                        "valid until",
                        format!("{} ({} days)", cert.not_after, cert.days_to_expiry),
                    ),
                    ("key", cert.key.clone()),
                    ("serial", cert.serial.clone()),
                ] {
                    lines.extend(plain(format!("  {label:<12}{value}")));
                }
                if let Some(fingerprint) = cert.sha256_fingerprint() {
                    // 95 characters: two lines of 16 bytes each fit a 60-column screen.
                    lines.extend(plain("  SHA-256 fingerprint".to_owned()));
                    let (first, second) = fingerprint.split_at(48.min(fingerprint.len()));
                    for half in [first, second] {
                        lines.extend(plain(format!("    {}", half.trim_end_matches(':'))));
                    }
                }
            }
            if info.chain.iter().any(|cert| cert.pem().is_some()) {
                lines.push(Line::default());
                lines.extend(plain(
                    ":cert FILE saves the chain as PEM (openssl s_client -showcerts)".to_owned(),
                ));
            }
        }
    }
    scrolled_box(
        frame,
        area,
        " certificate (Esc closes) ",
        lines,
        app.overlay_scroll,
        Style::new(),
    );
}

/// Whether an EHLO was answered on this cleartext connection without STARTTLS in it.
fn stripped_starttls(app: &App) -> bool {
    !app.status.extensions.is_empty() && !app.status.extensions.iter().any(|e| e == "STARTTLS")
}

/// Paragraphs with their styles.
type Styled = Vec<(String, Style)>;

/// The guard dialog's text: what happened (`body`, which may give way on a small screen) and
/// the choices with the override field (`footer`, always shown), as paragraphs with styles.
fn guard_text(app: &App, refusal: &Refusal) -> (Styled, Styled) {
    let theme = Theme::new(app.colour);
    let plain = Style::new();
    let bold = Style::new().add_modifier(Modifier::BOLD);
    let mut body: Styled = Vec::new();
    let mut add = |text: &str, style: Style| body.push((text.to_owned(), style));
    match refusal {
        Refusal::Cleartext => {
            add(
                "AUTH stopped: this connection is not encrypted.",
                theme.alarm(),
            );
            add("", plain);
            // The red flag first: on a small screen the end of the explanation gives way.
            if stripped_starttls(app) {
                add(
                    "This server's EHLO did not offer STARTTLS. On a port meant for AUTH that is \
                     a red flag: an attacker on the path may have removed it.",
                    theme.fg(Color::Yellow).add_modifier(Modifier::BOLD),
                );
                add("", plain);
            }
            add(
                "Your user name and password would cross the network readable by anyone on \
                 the path. Base64 is an encoding, not encryption. Nothing was sent.",
                plain,
            );
        }
        Refusal::Unverified(problem) => {
            add(
                "AUTH stopped: the certificate was NOT verified.",
                theme.alarm(),
            );
            add("", plain);
            add(&format!("{problem}."), plain);
            add(
                "The traffic is encrypted, but the peer may not be the server you meant: it \
                 would receive your credentials. Nothing was sent.",
                plain,
            );
        }
    }
    // A standing flag for the other case does not cover this one: say so, or the user may
    // think the flag they gave already let AUTH through.
    let other_flag = match refusal {
        Refusal::Cleartext if app.policy.allow_unverified_auth => {
            Some("--insecure is on, but it covers unverified certificates, not cleartext.")
        }
        Refusal::Unverified(_) if app.policy.allow_cleartext_auth => {
            Some("--allow-cleartext-auth is on, but it does not cover an unverified peer.")
        }
        _ => None,
    };
    if let Some(text) = other_flag {
        body.insert(1, (text.to_owned(), theme.fg(Color::Yellow)));
    }
    let Mode::Guard(dialog) = &app.mode else {
        return (body, Vec::new());
    };
    let mut footer: Styled = vec![(String::new(), plain)];
    match refusal {
        Refusal::Cleartext => {
            footer.push((
                if stripped_starttls(app) {
                    "Enter  try STARTTLS anyway (recommended), then EHLO and AUTH".to_owned()
                } else {
                    "Enter  STARTTLS (recommended), then EHLO and AUTH in TLS".to_owned()
                },
                bold,
            ));
            footer.push(("Esc    cancel".to_owned(), plain));
        }
        Refusal::Unverified(_) => {
            footer.push(("Enter or Esc  cancel (recommended)".to_owned(), bold));
        }
    }
    footer.push((
        format!(
            "type '{}' + Enter: send anyway, this one command only",
            dialog.override_word()
        ),
        plain,
    ));
    footer.push((String::new(), plain));
    footer.push((format!("override: {}", escape_str(&dialog.typed)), plain));
    (body, footer)
}

/// Draws the guard dialog, as tall as its wrapped text; on a screen too small for all of it
/// the explanation gives way (marked) and the choices and the `override:` field stay. The
/// cursor is put after what was typed into the field.
pub fn render_guard(app: &App, frame: &mut Frame, area: Rect, theme: Theme) {
    let Mode::Guard(dialog) = &app.mode else {
        return;
    };
    let box_width = area
        .width
        .saturating_sub(4)
        .clamp(20, GUARD_WIDTH)
        .min(area.width);
    let width = box_width.saturating_sub(2) as usize;
    let (body, mut choices) = guard_text(app, &dialog.refusal);
    let hint = dialog
        .hint
        .as_ref()
        .map(|hint| (hint.clone(), theme.fg(Color::Yellow)));
    // The field is the last paragraph of the choices.
    let field = choices.pop();
    let wrap = |paragraphs: &[(String, Style)]| -> Vec<Line<'static>> {
        paragraphs
            .iter()
            .flat_map(|(text, style)| wrap_styled(text, *style, width))
            .collect()
    };
    let mut body_lines = wrap(&body);
    let choice_lines = wrap(&choices);
    let field_lines = wrap(field.as_slice());
    let hint_lines = wrap(hint.as_slice());
    let kept = choice_lines.len() + field_lines.len() + hint_lines.len();
    let room = area.height.saturating_sub(2) as usize;
    if body_lines.len() + kept > room {
        // Blank lines go first, then the end of the explanation, marked.
        body_lines.retain(|line| line.width() > 0);
    }
    if body_lines.len() + kept > room {
        body_lines.truncate(room.saturating_sub(kept + 1));
        body_lines.push(Line::styled(
            "… (a larger terminal shows the whole explanation)",
            theme.dim(),
        ));
    }
    let cursor_row = body_lines.len() + choice_lines.len() + field_lines.len().saturating_sub(1);
    let cursor_column = field_lines.last().map_or(0, Line::width);
    let lines: Vec<Line<'static>> = body_lines
        .into_iter()
        .chain(choice_lines)
        .chain(field_lines)
        .chain(hint_lines)
        .collect();
    let height = (lines.len() as u16 + 2).min(area.height);
    let rect = centered(area, box_width, height);
    frame.render_widget(Clear, rect);
    frame.render_widget(
        Paragraph::new(lines).block(
            Block::bordered()
                .title(" credential guard ")
                .border_style(theme.alarm()),
        ),
        rect,
    );
    let y = rect.y + 1 + cursor_row as u16;
    if y + 1 < rect.bottom() {
        let x = rect.x + 1 + (cursor_column as u16).min(width.saturating_sub(1) as u16);
        frame.set_cursor_position((x, y));
    }
}

/// Draws the dialog for several pasted command lines: the lines (as many as fit), what each
/// choice does, and whether the server advertised PIPELINING. The choices always stay in view;
/// the list of lines gives way first, saying how many are not shown.
pub fn render_group(app: &App, frame: &mut Frame, area: Rect, theme: Theme) {
    let Mode::Group(group) = &app.mode else {
        return;
    };
    let box_width = area
        .width
        .saturating_sub(4)
        .clamp(20, GUARD_WIDTH)
        .min(area.width);
    let width = box_width.saturating_sub(2) as usize;
    let plain = Style::new();
    let bold = Style::new().add_modifier(Modifier::BOLD);
    let count = group.lines.len();
    let wrap = |text: &str, style: Style| wrap_styled(text, style, width);
    let mut head = wrap(
        &format!("{count} command lines were pasted. Nothing is sent yet."),
        bold,
    );
    let mut choices: Vec<Line<'static>> = vec![Line::default()];
    choices.extend(wrap(
        "Enter  keep the first line only (as typed), the rest dropped",
        bold,
    ));
    match group.unsendable() {
        Some(why) => {
            choices.extend(wrap(
                &format!("       not as a group: {why}"),
                theme.fg(Color::Yellow),
            ));
        }
        None if group.advertised => {
            choices.extend(wrap(
                &format!(
                    "p      send all {count} as one pipelined group (RFC 2920): one write, \
                     each reply paired with its command; checked before anything leaves"
                ),
                plain,
            ));
        }
        None => {
            choices.extend(wrap(
                "       PIPELINING was not advertised: p would be refused",
                theme.fg(Color::Yellow),
            ));
            choices.extend(wrap(
                &format!("f      send all {count} as one group anyway, to see what it does"),
                plain,
            ));
        }
    }
    choices.extend(wrap("Esc    drop the paste", plain));
    let room = area.height.saturating_sub(2) as usize;
    let mut listed: Vec<Line<'static>> = group
        .lines
        .iter()
        .flat_map(|line| {
            wrap(
                &format!("  {}", escape_str(&super::engine::debug_line(line))),
                plain,
            )
        })
        .collect();
    let fixed = head.len() + choices.len();
    if fixed + listed.len() > room {
        let keep = room.saturating_sub(fixed + 1);
        let hidden = listed.len().saturating_sub(keep);
        listed.truncate(keep);
        listed.push(Line::styled(
            format!("  … {hidden} more line(s) not shown"),
            theme.dim(),
        ));
    }
    head.extend(listed);
    head.extend(choices);
    let height = (head.len() as u16 + 2).min(area.height);
    let rect = centered(area, box_width, height);
    frame.render_widget(Clear, rect);
    frame.render_widget(
        Paragraph::new(head).block(
            Block::bordered()
                .title(" pasted lines ")
                .border_style(theme.fg(Color::Cyan)),
        ),
        rect,
    );
}
