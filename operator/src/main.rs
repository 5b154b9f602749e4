//! kamera-operator: reconciles `Camera` and `FrameProcessor` resources into worker pods.
//! The controller lands with the operator issue; this binary only reports that for now.

fn main() {
    eprintln!("kamera-operator: the controller is not built yet; see the operator issue");
    std::process::exit(2);
}
