//! Untrusted recorded video and scanned frames: the bytes are read as a YUV4MPEG2 stream (the
//! header's frame size is checked before any allocation) and every frame goes through the same
//! reception path as a camera's; the same bytes are also read as scanner text lines. Nothing
//! may panic, and only a checked bundle may come out.
#![no_main]

use airgap_bundle::frames::{FrameSource, Y4mVideo};
use airgap_bundle::receive::Reception;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(mut video) = Y4mVideo::new(data, "fuzz.y4m") {
        let mut reception = Reception::new();
        for _ in 0..8 {
            match video.next_frame() {
                Ok(Some(frame)) => {
                    reception.feed_frame(&frame.image);
                }
                _ => break,
            }
        }
        if let Ok(bundle) = reception.finish() {
            assert_eq!(
                airgap_bundle::Bundle::decode(&bundle.encode()).ok(),
                Some(bundle)
            );
        }
    }
    let mut reception = Reception::new();
    for line in String::from_utf8_lossy(data).lines().take(256) {
        reception.feed_text(line);
    }
    let _ = reception.finish();
});
