//! Compresses the staff app's text files (`web/`) at build time: each
//! becomes `OUT_DIR/web/<name>.gz` and `.br` beside what `include_bytes!`
//! embeds, so the box answers `Accept-Encoding` without compressing
//! anything per request (src/api/web.rs).

use std::io::Write;
use std::path::Path;

fn main() {
    println!("cargo:rerun-if-changed=web");
    let out = Path::new(&std::env::var("OUT_DIR").expect("OUT_DIR")).join("web");
    compress_dir(Path::new("web"), Path::new("web"), &out);
}

fn compress_dir(root: &Path, dir: &Path, out: &Path) {
    let mut entries: Vec<_> =
        std::fs::read_dir(dir).expect("web/").map(|e| e.expect("web/ entry").path()).collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            compress_dir(root, &path, out);
            continue;
        }
        let text = matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("js" | "css" | "html" | "webmanifest" | "LICENSE" | "svg")
        );
        if !text {
            continue;
        }
        let bytes = std::fs::read(&path).expect("a web file");
        let target = out.join(path.strip_prefix(root).expect("under web/"));
        std::fs::create_dir_all(target.parent().expect("a parent")).expect("OUT_DIR/web");
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        gz.write_all(&bytes).expect("gzip");
        std::fs::write(with_suffix(&target, "gz"), gz.finish().expect("gzip")).expect("write .gz");
        let mut br = Vec::new();
        let params =
            brotli::enc::BrotliEncoderParams { quality: 11, lgwin: 22, ..Default::default() };
        brotli::BrotliCompress(&mut &bytes[..], &mut br, &params).expect("brotli");
        std::fs::write(with_suffix(&target, "br"), br).expect("write .br");
    }
}

fn with_suffix(path: &Path, suffix: &str) -> std::path::PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".");
    s.push(suffix);
    s.into()
}
