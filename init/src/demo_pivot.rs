//! `tessera-demo-pivot`: the pivot application of the emulated demo image. It reads the key the
//! enclave hands it on standard input and prints only how many bytes arrived, then waits for
//! the enclave to stop it.

use std::io::Read;

fn main() {
    let mut key = Vec::new();
    let n = std::io::stdin().read_to_end(&mut key).map_or(0, |n| n);
    key.fill(0);
    println!("tessera-demo-pivot: received {n} key bytes on stdin");
    loop {
        std::thread::park();
    }
}
