//! One applet as one card in vpcd's reader: APDU chaining in, response chaining out, and the
//! few places where the PIV applet answers differently from a YubiKey.

use heapless::VecView;
use iso7816::command::{CommandView, FromSliceError};
use iso7816::{Command, Status};

/// Largest command (after chaining) and largest response the card handles.
const MAX_APDU: usize = 7609;

const INS_SELECT: u8 = 0xa4;
const INS_GET_RESPONSE: u8 = 0xc0;
const INS_GET_DATA: u8 = 0xcb;
const INS_VERIFY: u8 = 0x20;
const INS_YK_GET_VERSION: u8 = 0xfd;

/// The PIV application identifier with its version suffix (NIST SP 800-73-4 part 1, 2.2).
const PIV_AID: [u8; 11] = [
    0xa0, 0x00, 0x00, 0x03, 0x08, 0x00, 0x00, 0x10, 0x00, 0x01, 0x00,
];
/// The tag list of a GET DATA for the Key History Object (5FC10C).
const KEY_HISTORY_TAG: [u8; 5] = [0x5c, 0x03, 0x5f, 0xc1, 0x0c];
/// What GET VERSION reports: a YubiKey 5 with AES management keys (5.4 and later).
pub const REPORTED_VERSION: [u8; 3] = [5, 4, 3];

/// An applet that answers complete APDUs.
pub trait Applet {
    fn respond(&mut self, command: CommandView<'_>, reply: &mut VecView<u8>) -> Result<(), Status>;
    /// What the applet does when the card is reset or powered off.
    fn on_reset(&mut self);
    /// Whether the YubiKey compatibility rules below apply (the PIV card only).
    fn yubikey_compatible(&self) -> bool {
        false
    }
}

impl<T: piv_authenticator::Client> Applet for piv_authenticator::Authenticator<T> {
    fn respond(&mut self, command: CommandView<'_>, reply: &mut VecView<u8>) -> Result<(), Status> {
        piv_authenticator::Authenticator::respond(self, command, reply)
    }

    fn on_reset(&mut self) {
        self.deselect();
    }

    fn yubikey_compatible(&self) -> bool {
        true
    }
}

impl<T: opcard::Client> Applet for opcard::Card<T> {
    fn respond(&mut self, command: CommandView<'_>, reply: &mut VecView<u8>) -> Result<(), Status> {
        self.handle(command, reply)
    }

    fn on_reset(&mut self) {
        self.reset();
    }
}

pub struct Card<A> {
    applet: A,
    /// The commands of a chain received so far.
    chain: Option<Command<MAX_APDU>>,
    /// The response being read out with GET RESPONSE, and how much of it was sent.
    response: heapless::Vec<u8, MAX_APDU>,
    sent: usize,
    trace: bool,
}

impl<A: Applet> Card<A> {
    pub fn new(applet: A) -> Self {
        Self {
            applet,
            chain: None,
            response: heapless::Vec::new(),
            sent: 0,
            trace: std::env::var_os("TESSERA_VCARD_TRACE").is_some(),
        }
    }

    /// Forgets volatile state, as a card does when it loses power.
    fn power_cycle(&mut self) {
        self.chain = None;
        self.response.clear();
        self.sent = 0;
        self.applet.on_reset();
        if self.applet.yubikey_compatible() {
            // A YubiKey forgets a verified PIN on reset; the PIV applet keeps it until told
            // otherwise, which VERIFY with P1 = FF does (SP 800-73-4 part 2, 3.2.1).
            let logout = [0x00, INS_VERIFY, 0xff, 0x80];
            let _ = self.complete(&logout);
        }
    }

    /// One APDU from the reader, answered with data and status word.
    fn apdu(&mut self, bytes: &[u8]) -> Vec<u8> {
        let (mut data, status) = match self.yubikey_answer(bytes) {
            Some(answer) => answer,
            None => self.complete(bytes),
        };
        let sw: [u8; 2] = status.into();
        data.extend_from_slice(&sw);
        data
    }

    /// Answers that differ from what the PIV applet says by itself, so that the `yubikey` crate
    /// and the tools built on it treat the card as a YubiKey 5.
    fn yubikey_answer(&mut self, bytes: &[u8]) -> Option<(Vec<u8>, Status)> {
        if !self.applet.yubikey_compatible() || bytes.len() < 4 {
            return None;
        }
        let (ins, p1, body) = (bytes[1], bytes[2], &bytes[4.min(bytes.len())..]);
        // SELECT by the PIV RID alone (5 bytes), as the `yubikey` crate does: the applet only
        // matches the longer AID, a YubiKey matches any prefix of it.
        if ins == INS_SELECT && p1 == 0x04 && body.len() > 1 {
            let lc = usize::from(body[0]);
            let aid = &body[1..(1 + lc).min(body.len())];
            if aid.len() >= 5 && aid.len() < PIV_AID.len() && PIV_AID.starts_with(aid) {
                let mut select = vec![bytes[0], INS_SELECT, 0x04, bytes[3], PIV_AID.len() as u8];
                select.extend_from_slice(&PIV_AID);
                select.extend_from_slice(&body[1 + lc..]);
                return Some(self.complete(&select));
            }
        }
        // The Key History Object: the applet makes one up, a YubiKey has none until written,
        // and the `yubikey` crate's key listing fails on the made-up one.
        if ins == INS_GET_DATA
            && body.len() > KEY_HISTORY_TAG.len()
            && body[1..].starts_with(&KEY_HISTORY_TAG)
        {
            return Some((Vec::new(), Status::NotFound));
        }
        // GET VERSION: the `yubikey` crate reads serial numbers only from YubiKey 4 and 5.
        if ins == INS_YK_GET_VERSION {
            let (_, status) = self.complete(bytes);
            if status == Status::Success {
                return Some((REPORTED_VERSION.to_vec(), Status::Success));
            }
            return Some((Vec::new(), status));
        }
        None
    }

    /// Chaining and GET RESPONSE around the applet.
    fn complete(&mut self, bytes: &[u8]) -> (Vec<u8>, Status) {
        let command = match Command::<MAX_APDU>::try_from(bytes) {
            Ok(c) => c,
            Err(e) => return (Vec::new(), parse_status(e)),
        };
        if command.instruction() == iso7816::Instruction::GetResponse
            || bytes.get(1) == Some(&INS_GET_RESPONSE)
        {
            return self.next_part(command.expected());
        }
        let command = match self.chain.take() {
            Some(mut first) => {
                if first.extend_from_command(&command).is_err() {
                    return (Vec::new(), Status::WrongLength);
                }
                first
            }
            None => command,
        };
        if !command.class().chain().last_or_only() {
            self.chain = Some(command);
            return (Vec::new(), Status::Success);
        }
        self.response.clear();
        self.sent = 0;
        let result = self
            .applet
            .respond(command.as_view(), self.response.as_mut_view());
        if let Err(status) = result {
            self.response.clear();
            return (Vec::new(), status);
        }
        self.next_part(command.expected())
    }

    /// The next part of the response: at most `le` bytes, or 256 when the command had no Le (a
    /// YubiKey returns data then too, and PC/SC clients rely on it).
    fn next_part(&mut self, le: usize) -> (Vec<u8>, Status) {
        let le = if le == 0 { 256 } else { le };
        let rest = &self.response[self.sent..];
        let part = rest[..le.min(rest.len())].to_vec();
        self.sent += part.len();
        let left = self.response.len() - self.sent;
        if left == 0 {
            (part, Status::Success)
        } else {
            (part, Status::MoreAvailable(u8::try_from(left).unwrap_or(0)))
        }
    }
}

fn parse_status(e: FromSliceError) -> Status {
    match e {
        FromSliceError::InvalidClass => Status::ClassNotSupported,
        FromSliceError::InvalidFirstBodyByteForExtended => Status::UnspecifiedCheckingError,
        FromSliceError::TooShort | FromSliceError::TooLong | FromSliceError::InvalidSliceLength => {
            Status::WrongLength
        }
    }
}

impl<A: Applet> vpicc::VSmartCard for Card<A> {
    fn power_off(&mut self) {
        self.power_cycle();
    }

    fn reset(&mut self) {
        self.power_cycle();
    }

    fn execute(&mut self, apdu: &[u8]) -> Vec<u8> {
        let answer = self.apdu(apdu);
        if self.trace {
            eprintln!("> {}", hex(apdu));
            eprintln!("< {}", hex(&answer));
        }
        answer
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
