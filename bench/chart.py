"""Draws bench/benchmarks.png from the summary bench/compare writes; run by bench/compare in
bench/.venv (where matplotlib is installed), not by hand.

usage: chart.py SUMMARY.json OUT.png

Four panels: throughput per scenario, latency at a fixed rate, broker memory, and Warren's
ratio to RabbitMQ per scenario against the issue's targets (drawn so that right of 1 is
always "Warren better").
"""

import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402

COLORS = {"warren": "#2a7ab0", "rabbitmq": "#f28c28"}
LABEL = {"warren": "Warren", "rabbitmq": "RabbitMQ"}
THROUGHPUT = ["transient", "transient-autoack", "persistent-confirm", "fanout", "many-queues"]


def value(summary, scenario, broker, key):
    return (summary.get(scenario, {}).get(broker) or {}).get(key)


def grouped_bars(ax, groups, values_of, title, unit, scale=1.0):
    width = 0.38
    for i, broker in enumerate(["warren", "rabbitmq"]):
        xs = [g + (i - 0.5) * width for g in range(len(groups))]
        ys = [(values_of(group, broker) or 0) / scale for group in groups]
        bars = ax.bar(xs, ys, width, label=LABEL[broker], color=COLORS[broker])
        for bar, y in zip(bars, ys):
            if y:
                ax.annotate(f"{y:,.0f}" if y >= 10 else f"{y:.2f}", (bar.get_x() + bar.get_width() / 2, y),
                            ha="center", va="bottom", fontsize=7)
    ax.set_xticks(range(len(groups)))
    ax.set_xticklabels(groups, rotation=15, fontsize=8)
    ax.set_title(title, fontsize=10)
    ax.set_ylabel(unit, fontsize=8)
    ax.legend(fontsize=8)


def main(summary_path, png):
    data = json.load(open(summary_path))
    summary, scenarios, headline = data["summary"], data["scenarios"], data["headline"]
    fig, axes = plt.subplots(2, 2, figsize=(13, 9))

    throughput = [s for s in THROUGHPUT if s in scenarios]
    grouped_bars(axes[0][0], throughput, lambda s, b: value(summary, s, b, "consumed_per_s"),
                 "Consumed messages per second (fanout: deliveries)", "thousand msg/s", scale=1000)

    if "latency" in scenarios:
        keys = [("p50", "latency_p50_us"), ("p99", "latency_p99_us"), ("p99.9", "latency_p999_us")]
        grouped_bars(axes[0][1], [k for k, _ in keys],
                     lambda k, b: value(summary, "latency", b, dict(keys)[k]),
                     "Latency at 10,000 msg/s (lower is better)", "µs")
    else:
        axes[0][1].set_axis_off()

    memory = [(s, k) for s, k in [("backlog", "broker_rss_peak_bytes"), ("connections", "broker_rss_held_bytes")]
              if s in scenarios]
    if memory:
        grouped_bars(axes[1][0], [s for s, _ in memory], lambda s, b: value(summary, s, b, dict(memory)[s]),
                     "Broker resident memory (lower is better)", "MiB", scale=1 << 20)
    else:
        axes[1][0].set_axis_off()

    ax = axes[1][1]
    names, advantages, targets = [], [], []
    for s in scenarios:
        key, _, more_is_better, target = headline[s]
        w, r = value(summary, s, "warren", key), value(summary, s, "rabbitmq", key)
        if not w or not r:
            continue
        names.append(s)
        advantages.append(w / r if more_is_better else r / w)
        targets.append(target if more_is_better else 1 / target)
    ys = range(len(names))
    ax.barh(ys, advantages, color=[COLORS["warren"] if a >= 1 else "#c0392b" for a in advantages])
    ax.scatter(targets, ys, marker="|", s=300, color="black", label="target", zorder=3)
    ax.axvline(1, color="grey", linewidth=0.8)
    ax.set_xscale("log")
    low = min(advantages + targets + [1.0]) / 1.5
    high = max(advantages + targets + [1.0]) * 1.8
    ax.set_xlim(low, high)
    ticks = [t for t in (0.125, 0.25, 0.5, 1, 2, 4, 8, 16, 32, 64) if low <= t <= high]
    ax.set_xticks(ticks)
    ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}×"))
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_yticks(list(ys))
    ax.set_yticklabels(names, fontsize=8)
    ax.invert_yaxis()
    for y, a in zip(ys, advantages):
        ax.annotate(f"{a:.2f}×", (a, y), xytext=(3, 0), textcoords="offset points", va="center", fontsize=8)
    ax.set_title("Warren's advantage over RabbitMQ (× better; bar = measured, | = target)", fontsize=10)
    ax.legend(fontsize=8, loc="lower right")

    fig.suptitle("warren bench: Warren and RabbitMQ on the same machine (medians)", fontsize=12)
    fig.tight_layout()
    fig.savefig(png, dpi=110)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
