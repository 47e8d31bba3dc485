//! 15. Previews (`-- previews`): what a capture's preview costs with the
//!     field's decoders in the sandbox (`venuebox::media::preview`), on
//!     files like a phone's: a 12-megapixel JPEG with no embedded preview
//!     (CPU of the box and its child, against `djpeg -scale 1/8` alone on
//!     the same file, and the in-process decoder it replaces), a 12 MP
//!     HEIC and a 30 s 1080p H.264 video (time, CPU, the child's peak
//!     memory).

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};
use venuebox::media::preview::Tools;
use venuebox::media::thumbnail::make_with;

/// CPU time of this thread and of the children waited for, so far.
fn cpu() -> (Duration, Duration) {
    // SAFETY: getrusage writes into the struct we own.
    let children = unsafe {
        let mut r: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_CHILDREN, &mut r);
        let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
        tv(r.ru_utime) + tv(r.ru_stime)
    };
    (super::thread_cpu(), children)
}

/// (this thread's, the children's) CPU per run of `f`, over `n` runs.
fn per_run(n: u32, mut f: impl FnMut()) -> (f64, f64) {
    let (t0, c0) = cpu();
    for _ in 0..n {
        f();
    }
    let (t1, c1) = cpu();
    ((t1 - t0).as_secs_f64() * 1e3 / n as f64, (c1 - c0).as_secs_f64() * 1e3 / n as f64)
}

fn run(program: &str, args: &[&str]) {
    let out = Command::new(program).args(args).output().unwrap();
    assert!(out.status.success(), "{program}: {}", String::from_utf8_lossy(&out.stderr));
}

pub fn previews_phase(photo_without_preview: &[u8]) {
    super::apt::install(&["libjpeg-turbo-progs", "heif-thumbnailer", "libheif-examples", "ffmpeg"]);
    let tools = Tools::find();
    assert!(tools.missing().is_empty(), "{:?}", tools.missing());
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(n);
    std::fs::write(p("photo.jpg"), photo_without_preview).unwrap();
    let jpg = p("photo.jpg");
    let s = |p: &Path| p.to_str().unwrap().to_string();

    // Warm the page cache and the dynamic loader once.
    make_with(&jpg, &tools).unwrap();
    venuebox::media::preview::take_spent();
    let (box_ms, child_ms) = per_run(30, || {
        make_with(&jpg, &tools).unwrap();
    });
    let (_, djpeg_ms) = per_run(30, || {
        let out = Command::new("djpeg").args(["-scale", "1/8", "-pnm", &s(&jpg)]).output().unwrap();
        assert!(out.status.success());
    });
    let (inproc_ms, _) = per_run(5, || {
        make_with(&jpg, &Tools::none()).unwrap();
    });
    let (_, jpeg_peak) = venuebox::media::preview::take_spent();
    let ours = box_ms + child_ms;
    println!(
        "preview of a 12 MP JPEG without an embedded one, CPU: {ours:.1} ms ({box_ms:.1} ms the box: read, scale to 320, encode; {child_ms:.1} ms djpeg in the sandbox, peak {:.1} MiB); djpeg -scale 1/8 alone: {djpeg_ms:.1} ms ({:.2}x); in-process decoder: {inproc_ms:.1} ms",
        jpeg_peak as f64 / 1024.0,
        ours / djpeg_ms
    );

    // A 12 MP HEIC (encoded once here with libheif's encoder).
    image::load_from_memory(photo_without_preview).unwrap().save(p("photo.png")).unwrap();
    run("heif-enc", &["-q", "55", &s(&p("photo.png")), "-o", &s(&p("photo.heic"))]);
    let heic = p("photo.heic");
    make_with(&heic, &tools).unwrap();
    venuebox::media::preview::take_spent();
    let t = Instant::now();
    let (box_ms, child_ms) = per_run(5, || {
        make_with(&heic, &tools).unwrap();
    });
    println!(
        "preview of a 12 MP HEIC with no thumbnail item ({:.1} MB): {:.0} ms each, CPU {box_ms:.1} ms the box + {child_ms:.1} ms heif-thumbnailer, its peak memory {:.0} MiB",
        std::fs::metadata(&heic).unwrap().len() as f64 / 1e6,
        t.elapsed().as_secs_f64() * 1e3 / 5.0,
        venuebox::media::preview::take_spent().1 as f64 / 1024.0
    );

    // A 30 s 1080p H.264 video, as a phone records it (with audio).
    let clip_args = "-v error -f lavfi -i testsrc2=size=1920x1080:rate=30 -f lavfi \
                     -i sine=frequency=440:sample_rate=48000 -t 30 -c:v libx264 -preset veryfast \
                     -b:v 12M -pix_fmt yuv420p -c:a aac -y";
    let clip_out = s(&p("clip.mp4"));
    let args: Vec<&str> =
        clip_args.split_whitespace().chain(std::iter::once(clip_out.as_str())).collect();
    run("ffmpeg", &args);
    let clip = p("clip.mp4");
    venuebox::media::preview::take_spent();
    let t = Instant::now();
    let (box_ms, child_ms) = per_run(5, || {
        let preview = make_with(&clip, &tools).unwrap();
        assert!(preview.duration_ms.is_some_and(|d| (29_900..=30_100).contains(&d)));
    });
    println!(
        "poster frame and duration of a 30 s 1080p video ({:.0} MB): {:.0} ms each, CPU {box_ms:.1} ms the box + {child_ms:.1} ms ffprobe and ffmpeg, their peak memory {:.0} MiB",
        std::fs::metadata(&clip).unwrap().len() as f64 / 1e6,
        t.elapsed().as_secs_f64() * 1e3 / 5.0,
        venuebox::media::preview::take_spent().1 as f64 / 1024.0
    );
}
