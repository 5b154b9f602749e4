use super::*;
use crate::media::{AudioConfig, VideoConfig};
use bytes::Bytes;
use std::time::{Duration, Instant};

fn peer() -> SocketAddr {
    "127.0.0.1:5000".parse().expect("addr")
}

fn video() -> VideoConfig {
    VideoConfig {
        avcc: Bytes::from_static(&[1]),
        sps: vec![],
        pps: vec![],
        nal_length_size: 4,
        profile_idc: 66,
        constraint_flags: 0,
        level_idc: 30,
        width: 320,
        height: 240,
    }
}

fn audio() -> AudioConfig {
    AudioConfig {
        asc: Bytes::from_static(&[0x12, 0x10]),
        object_type: 2,
        sample_rate: 44100,
        channels: 2,
    }
}

fn frame(track: Track, dts: i64, keyframe: bool) -> Frame {
    Frame {
        track,
        dts,
        pts: dts,
        keyframe,
        data: Bytes::from_static(&[0, 0, 0, 1, 0x65]),
    }
}

fn drain(sub: &mut Subscriber) -> Vec<Event> {
    let mut out = Vec::new();
    while let Some(ev) = sub.backlog.pop_front() {
        out.push(ev);
    }
    while let Ok(item) = sub.rx.try_recv() {
        if let Some(ev) = sub.accept(item) {
            out.push(ev);
            while let Some(ev) = sub.backlog.pop_front() {
                out.push(ev);
            }
        }
    }
    out
}

fn frame_dts(events: &[Event]) -> Vec<i64> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Frame(f) => Some(f.dts),
            _ => None,
        })
        .collect()
}

#[test]
fn second_publisher_on_live_camera_is_refused_and_takeover_replaces() {
    let hub = Hub::new();
    let first = hub.publish("cam", peer(), false).expect("first");
    assert!(matches!(
        hub.publish("cam", peer(), false),
        Err(PublishError::AlreadyLive { .. })
    ));
    assert!(!first.cancelled().is_cancelled());
    let second = hub.publish("cam", peer(), true).expect("takeover");
    assert!(first.cancelled().is_cancelled());
    drop(first);
    // Dropping the replaced publisher must not end the new session.
    assert!(second.channel().is_live());
}

#[test]
fn late_subscriber_starts_at_the_last_keyframe_with_config() {
    let hub = Hub::new();
    let p = hub.publish("cam", peer(), false).expect("publish");
    p.set_info(Some(video()), Some(audio()));
    p.push(frame(Track::Video, 0, true));
    p.push(frame(Track::Video, 33, false));
    p.push(frame(Track::Video, 66, true));
    p.push(frame(Track::Audio, 70, true));
    p.push(frame(Track::Video, 100, false));
    let mut sub = p.channel().subscribe();
    let events = drain(&mut sub);
    assert!(matches!(&events[0], Event::Start(info) if info.video.is_some()));
    assert_eq!(frame_dts(&events), vec![66, 70, 100]);
}

#[test]
fn subscriber_joining_mid_gop_after_overflow_waits_for_a_keyframe() {
    let hub = Hub::new();
    let p = hub.publish("cam", peer(), false).expect("publish");
    p.set_info(Some(video()), None);
    p.push(frame(Track::Video, 0, true));
    for i in 1..=MAX_GOP_FRAMES as i64 {
        p.push(frame(Track::Video, i * 33, false));
    }
    let mut sub = p.channel().subscribe();
    p.push(frame(Track::Video, 100_000, false));
    p.push(frame(Track::Video, 100_033, true));
    let events = drain(&mut sub);
    assert_eq!(frame_dts(&events), vec![100_033]);
}

#[test]
fn lagging_subscriber_gets_a_gap_then_resumes_at_a_keyframe() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let hub = Hub::new();
        let p = hub.publish("cam", peer(), false).expect("publish");
        p.set_info(Some(video()), None);
        let mut sub = p.channel().subscribe();
        assert!(matches!(sub.recv().await, Some(Event::Start(_))));
        // Overflow the ring: the subscriber reads nothing meanwhile.
        for i in 0..(RING as i64 * 2) {
            p.push(frame(Track::Video, i * 33, i % 30 == 0));
        }
        p.push(frame(Track::Video, 99_000, false));
        p.push(frame(Track::Video, 99_033, true));
        assert!(matches!(sub.recv().await, Some(Event::Gap { dropped }) if dropped > 0));
        let Some(Event::Frame(first)) = sub.recv().await else {
            panic!("expected a frame after the gap");
        };
        assert!(first.keyframe, "resumed on a non-keyframe");
    });
}

#[test]
fn publisher_drop_ends_the_session_for_subscribers() {
    let hub = Hub::new();
    let p = hub.publish("cam", peer(), false).expect("publish");
    p.set_info(Some(video()), None);
    let channel = p.channel().clone();
    let mut sub = channel.subscribe();
    drop(p);
    let events = drain(&mut sub);
    assert!(matches!(events.last(), Some(Event::End)));
    assert!(!channel.is_live());
    assert!(channel.info().is_none());
    assert!(
        hub.publish("cam", peer(), false).is_ok(),
        "republish after end"
    );
}

#[test]
fn audio_only_stream_caches_from_audio_frames() {
    let hub = Hub::new();
    let p = hub.publish("radio", peer(), false).expect("publish");
    p.set_info(None, Some(audio()));
    p.push(frame(Track::Audio, 0, true));
    p.push(frame(Track::Audio, 23, true));
    let mut sub = p.channel().subscribe();
    assert_eq!(frame_dts(&drain(&mut sub)), vec![23]);
}

#[test]
fn new_cameras_bump_the_watch() {
    let hub = Hub::new();
    let rx = hub.watch_cameras();
    let before = *rx.borrow();
    hub.channel("a");
    hub.channel("a");
    assert_eq!(*rx.borrow(), before + 1);
    assert_eq!(hub.channels().len(), 1);
}

#[test]
fn a_new_camera_beyond_the_cap_is_refused_and_a_known_one_is_not() {
    let hub = Hub::with_max_cameras(2);
    let a = hub.publish("a", peer(), false).expect("a");
    let _b = hub.publish("b", peer(), false).expect("b");
    assert_eq!(
        hub.publish("c", peer(), false).err(),
        Some(PublishError::TooManyCameras {
            camera: "c".into(),
            max: 2
        })
    );
    drop(a);
    // Idle within the grace period, `a` still holds its place and may publish again.
    assert!(hub.publish("c", peer(), false).is_err());
    assert!(hub.publish("a", peer(), false).is_ok());
}

#[test]
fn an_idle_camera_is_released_after_the_grace_period_and_frees_its_place() {
    let grace = Duration::from_secs(60);
    let hub = Hub::with_max_cameras(1);
    let p = hub.publish("cam", peer(), false).expect("publish");
    p.set_info(Some(video()), None);
    let mut sub = p.channel().subscribe();
    assert_eq!(hub.next_release(grace), None, "live cameras are never due");
    assert!(hub
        .begin_release(Instant::now() + grace * 10, grace)
        .is_empty());

    drop(p);
    let due = hub.next_release(grace).expect("due once idle");
    assert!(hub
        .begin_release(due - Duration::from_millis(1), grace)
        .is_empty());
    let released = hub.begin_release(due, grace);
    assert_eq!(released.len(), 1);
    assert_eq!(hub.next_release(grace), None, "already releasing");

    // Releasing: gone from the API, its place still taken, its publishers refused.
    assert!(hub.get("cam").is_none() && hub.channels().is_empty());
    assert_eq!(hub.len(), 1);
    assert!(matches!(
        hub.publish("cam", peer(), false),
        Err(PublishError::Releasing { .. })
    ));
    // The channel is closed: the subscriber reads what was sent, then the end.
    let events = drain(&mut sub);
    assert!(matches!(events.last(), Some(Event::End)));
    assert!(matches!(
        sub.rx.try_recv(),
        Err(broadcast::error::TryRecvError::Closed)
    ));

    assert_eq!(hub.released("cam"), None, "not released until forgotten");
    hub.forget("cam");
    assert!(hub.is_empty());
    let released = hub.released("cam").expect("the release is remembered");
    assert!(released.last_seen.is_some_and(|seen| seen <= released.at));
    let again = hub
        .publish("other", peer(), false)
        .expect("the place is free again");
    assert!(again.channel().is_live());
    drop(again);
    hub.begin_release(Instant::now() + grace * 10, grace);
    hub.forget("other");
    let _cam = hub.publish("cam", peer(), false).expect("cam again");
    assert_eq!(hub.released("cam"), None, "published again: not released");
    assert!(hub.released("other").is_some());
}

#[test]
fn the_hub_remembers_only_the_latest_releases() {
    let grace = Duration::from_secs(1);
    let hub = Hub::new();
    for i in 0..=RELEASED_KEPT {
        drop(
            hub.publish(&format!("k{i}"), peer(), false)
                .expect("publish"),
        );
        hub.begin_release(Instant::now() + grace * 10, grace);
        hub.forget(&format!("k{i}"));
    }
    assert_eq!(hub.released("k0"), None, "the oldest is forgotten");
    assert!(hub.released("k1").is_some());
    assert!(hub.released(&format!("k{RELEASED_KEPT}")).is_some());
}

#[test]
fn a_publisher_returning_within_the_grace_period_keeps_the_camera() {
    let grace = Duration::from_secs(60);
    let hub = Hub::new();
    let first = hub.publish("cam", peer(), false).expect("publish");
    let channel = first.channel().clone();
    drop(first);
    let due = hub.next_release(grace).expect("idle");
    let back = hub.publish("cam", peer(), false).expect("back in time");
    assert!(
        Arc::ptr_eq(back.channel(), &channel),
        "the same camera continues"
    );
    assert!(hub.begin_release(due + grace, grace).is_empty());
    assert_eq!(hub.next_release(grace), None);
}

#[test]
fn a_session_ending_bumps_the_watch_so_its_release_is_scheduled() {
    let hub = Hub::new();
    let p = hub.publish("cam", peer(), false).expect("publish");
    let rx = hub.watch_cameras();
    let before = *rx.borrow();
    drop(p);
    assert!(*rx.borrow() > before);
}

#[test]
fn subscribing_to_a_closed_channel_ends_at_once() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let hub = Hub::new();
        let channel = hub.channel("cam");
        hub.close_all();
        let mut sub = channel.subscribe();
        assert!(sub.recv().await.is_none());
    });
}

#[test]
fn a_pulled_camera_is_never_released_and_takes_no_rtmp_publisher() {
    let hub = Hub::with_max_cameras(2);
    hub.pull("door").expect("pull");
    assert!(
        hub.get("door").is_some(),
        "listed before its source connects"
    );
    let grace = Duration::from_secs(1);
    assert_eq!(hub.next_release(grace), None);
    assert!(hub
        .begin_release(Instant::now() + grace * 100, grace)
        .is_empty());
    assert!(matches!(
        hub.publish("door", peer(), true),
        Err(PublishError::Pulled { .. })
    ));
    let session = hub
        .publish_pulled("door", peer())
        .expect("the pull publishes");
    assert!(hub.get("door").expect("door").is_live());
    drop(session);
    assert!(hub
        .begin_release(Instant::now() + grace * 100, grace)
        .is_empty());
    assert!(matches!(
        hub.publish_pulled("other", peer()),
        Err(PublishError::Pulled { .. })
    ));
}
