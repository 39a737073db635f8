//! The slip as a PDF: the 80 mm layout on a page of its own size, to mail
//! to the customer or keep. The font is Noto Sans Mono CJK SC, embedded with
//! only the glyphs the slip uses, so a slip stays a few tens of kilobytes.

use crate::SlipError;
use crate::layout::{self, Style, char_cols};
use crate::slip::{Locale, Slip, Width};
use crate::words;
use krilla::Document;
use krilla::color::luma;
use krilla::geom::{PathBuilder, Point};
use krilla::metadata::{DateTime, Metadata};
use krilla::page::PageSettings;
use krilla::paint::Stroke;
use krilla::text::{Font, GlyphId, KrillaGlyph};
use skrifa::instance::{LocationRef, Size};
use skrifa::{FontRef, MetadataProvider};

/// GB 2312 and the punctuation around it; see `fonts/README.md`.
static FONT: &[u8] = include_bytes!("../fonts/NotoSansMonoCJKsc-Regular-GB2312.otf");

/// Points. One column is half an em, as on the paper.
const FONT_SIZE: f32 = 9.0;
const COLUMN: f32 = FONT_SIZE / 2.0;
const LEADING: f32 = FONT_SIZE * 1.5;
const MARGIN: f32 = 18.0;
/// Where the baseline sits below the top of the em box (Noto CJK's ascender).
const ASCENT: f32 = 0.88;
/// Stroked outlines stand in for bold: the slip carries one font file only.
const BOLD_STROKE: f32 = 0.35;

/// Glyph ids and widths from the embedded font, to put each character on
/// the slip's column grid.
struct Grid<'a> {
    font: FontRef<'a>,
    units_per_em: f32,
}

impl Grid<'_> {
    /// One glyph per character, each advancing by its columns. A glyph
    /// narrower than its cell (é, ·) is centred in it. Characters the font
    /// lacks draw as its empty box but keep their text, so a search still
    /// finds them.
    fn glyphs(&self, text: &str) -> Vec<KrillaGlyph> {
        let charmap = self.font.charmap();
        let metrics = self.font.glyph_metrics(Size::unscaled(), LocationRef::default());
        text.char_indices()
            .map(|(at, c)| {
                let id = charmap.map(c).unwrap_or_default();
                let cell = char_cols(c) as f32 / 2.0;
                let width = metrics.advance_width(id).unwrap_or(0.0) / self.units_per_em;
                let offset = ((cell - width) / 2.0).max(0.0);
                KrillaGlyph::new(GlyphId::new(id.to_u32()), cell, offset, 0.0, 0.0, at..at + c.len_utf8(), None)
            })
            .collect()
    }
}

fn line_height(style: Style) -> f32 {
    if style == Style::Title { 2.0 * LEADING } else { LEADING }
}

fn black_stroke(width: f32) -> Stroke {
    Stroke { paint: luma::Color::black().into(), width, ..Default::default() }
}

/// The slip as a one-page PDF.
pub fn pdf(slip: &Slip) -> Result<Vec<u8>, SlipError> {
    let columns = Width::Mm80.columns();
    let lines = layout::build(slip, columns);
    let face = FontRef::new(FONT).map_err(|_| SlipError::Font)?;
    let grid = Grid {
        units_per_em: f32::from(face.metrics(Size::unscaled(), LocationRef::default()).units_per_em),
        font: face,
    };
    let font = Font::new(FONT.into(), 0).ok_or(SlipError::Font)?;

    let page_width = 2.0 * MARGIN + columns as f32 * COLUMN;
    let page_height = 2.0 * MARGIN + lines.iter().map(|l| line_height(l.style)).sum::<f32>();
    let mut document = Document::new();
    document.set_metadata(metadata(slip));
    let settings = PageSettings::from_wh(page_width, page_height).ok_or(SlipError::Pdf("page size".into()))?;
    let mut page = document.start_page_with(settings);
    let mut surface = page.surface();

    let mut top = MARGIN;
    for line in &lines {
        let height = line_height(line.style);
        if line.style == Style::Rule {
            let mut path = PathBuilder::new();
            path.move_to(MARGIN, top + height / 2.0);
            path.line_to(page_width - MARGIN, top + height / 2.0);
            if let Some(path) = path.finish() {
                surface.set_fill(None);
                surface.set_stroke(Some(black_stroke(0.5)));
                surface.draw_path(&path);
            }
        } else {
            let (size, text, x) = if line.style == Style::Title {
                // centred here: the layout's spaces would double with the size
                let text = line.text.trim_start();
                let size = 2.0 * FONT_SIZE;
                (size, text, (page_width - layout::cols(text) as f32 * size / 2.0) / 2.0)
            } else {
                (FONT_SIZE, line.text.as_str(), MARGIN)
            };
            let bold = matches!(line.style, Style::Strong | Style::Title);
            surface.set_fill(Some(Default::default()));
            surface.set_stroke(bold.then(|| black_stroke(BOLD_STROKE)));
            let baseline = top + (height - size) / 2.0 + ASCENT * size;
            surface.draw_glyphs(Point::from_xy(x, baseline), &grid.glyphs(text), font.clone(), text, size, false);
        }
        top += height;
    }
    surface.finish();
    page.finish();
    document.finish().map_err(|e| SlipError::Pdf(format!("{e:?}")))
}

/// Title, language and date, so a mail client or archive can tell slips
/// apart. The date is the refund's, not the time of rendering: the same
/// slip renders to the same bytes.
fn metadata(slip: &Slip) -> Metadata {
    let title = format!("{} {}", words::TITLE.show(slip.locale), slip.refund_id);
    let language = match slip.locale {
        Locale::Zh => "zh-CN",
        Locale::En => "en",
    };
    let at = slip.created_at.to_zoned(slip.time_zone.clone());
    let offset_minutes = at.offset().seconds() / 60;
    let date = DateTime::new(at.year() as u16)
        .month(at.month() as u8)
        .day(at.day() as u8)
        .hour(at.hour() as u8)
        .minute(at.minute() as u8)
        .second(at.second() as u8)
        .utc_offset_hour((offset_minutes / 60) as i8)
        .utc_offset_minute((offset_minutes % 60).unsigned_abs() as u8);
    Metadata::new().title(title).language(language.into()).creator("Refundry".into()).creation_date(date)
}
