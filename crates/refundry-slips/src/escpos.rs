//! ESC/POS bytes for the counter's thermal printer. Written by hand: a slip
//! needs eight commands, and the `escpos` crate (0.20) is built around its
//! own printer drivers and knows neither Chinese mode nor GB18030.

use crate::layout::{self, Style};
use crate::slip::{Slip, Width};

const ESC: u8 = 0x1b;
const FS: u8 = 0x1c;
const GS: u8 = 0x1d;

/// ESC @: forget whatever the last job left set.
const INIT: [u8; 2] = [ESC, b'@'];
/// FS &: Chinese character mode, so bytes from 0x81 up are read as GB18030
/// (GBK) codes. Printers sold in China expect this.
const CHINESE_MODE: [u8; 2] = [FS, b'&'];
const ALIGN_CENTRE: [u8; 3] = [ESC, b'a', 1];
const ALIGN_LEFT: [u8; 3] = [ESC, b'a', 0];
/// GS ! 0x11: double width and double height, for ASCII and hanzi alike.
const DOUBLE_SIZE: [u8; 3] = [GS, b'!', 0x11];
const NORMAL_SIZE: [u8; 3] = [GS, b'!', 0];
const BOLD_ON: [u8; 3] = [ESC, b'E', 1];
const BOLD_OFF: [u8; 3] = [ESC, b'E', 0];
/// GS V 66 0: feed the last line past the cutter, then cut leaving a hinge
/// so the slip does not fall on the floor.
const FEED_AND_PARTIAL_CUT: [u8; 4] = [GS, b'V', 66, 0];

/// The slip as bytes to send to the printer as they are.
pub fn escpos(slip: &Slip, width: Width) -> Vec<u8> {
    let mut out = Vec::with_capacity(4096);
    out.extend_from_slice(&INIT);
    out.extend_from_slice(&CHINESE_MODE);
    for line in layout::build(slip, width.columns()) {
        match line.style {
            // centred by the printer: padding with spaces would double too
            Style::Title => {
                out.extend_from_slice(&ALIGN_CENTRE);
                out.extend_from_slice(&DOUBLE_SIZE);
                out.extend_from_slice(&BOLD_ON);
                push_line(&mut out, line.text.trim_start());
                out.extend_from_slice(&BOLD_OFF);
                out.extend_from_slice(&NORMAL_SIZE);
                out.extend_from_slice(&ALIGN_LEFT);
            }
            Style::Strong => {
                out.extend_from_slice(&BOLD_ON);
                push_line(&mut out, &line.text);
                out.extend_from_slice(&BOLD_OFF);
            }
            Style::Plain | Style::Rule => push_line(&mut out, &line.text),
        }
    }
    out.extend_from_slice(&FEED_AND_PARTIAL_CUT);
    out
}

/// The text in GB18030, then LF. The layout has already removed control
/// characters, so caller text cannot smuggle in a command.
fn push_line(out: &mut Vec<u8>, text: &str) {
    let (bytes, _, _) = encoding_rs::GB18030.encode(text);
    out.extend_from_slice(&bytes);
    out.push(b'\n');
}
