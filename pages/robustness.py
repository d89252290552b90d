"""Robustness: accuracy versus noise σ of a gradient-loss model and a baseline, side by side."""
import streamlit as st

from gradloss import data, views
from gradloss.config import OBJECTIVES
from gradloss.perturbations import gaussian
from gradloss.service import store

st.title("Robustness to input noise")


@st.cache_data(ttl=300)
def sweep_tables(db: str, run_ids: tuple[str, ...]):
    runs = store.RunStore(db)  # finished runs: their sweeps no longer change
    return runs.robustness(list(run_ids)), {i: runs.examples(i) for i in run_ids}


@st.cache_data(ttl=3600)
def test_images(dataset: str):
    """(x_test, class names) of a dataset, for the image grid."""
    d = data.load_dataset(dataset, train_size=None)
    return d.x_test, d.class_names


try:
    runs_store = store.RunStore.default()
    done = runs_store.list_runs(status="done", limit=200)
except Exception as e:  # noqa: BLE001
    st.error(f"Could not read the run store: {e}")
    st.stop()
if not done:
    if runs_store.list_runs(status=("queued", "running"), limit=1):
        st.info("Runs are queued or training: their robustness sweep is stored when they finish. "
                "Follow them on the Train page.")
        st.stop()
    st.info("No finished runs yet. Train a gradient-loss model and a baseline (Train page, objective "
            "“both”, or Quick compare on the home page); their accuracy-versus-noise curves appear here.")
    st.stop()

# 1) Which runs: the latest pair by default.
by_id = {r.run_id: r for r in done}
pair = views.latest_pair(done)
picked = {}
cols = st.columns(2)
for col, objective in zip(cols, OBJECTIVES):
    options = [r.run_id for r in done if r.objective == objective]
    if not options:
        col.info(f"No finished {views.OBJECTIVE_NAMES[objective]} run yet.")
        continue
    default = pair[objective].run_id if objective in pair else options[0]
    picked[objective] = col.selectbox(views.OBJECTIVE_NAMES[objective].capitalize() + " run", options,
                                      index=options.index(default), key=f"run_{objective}",
                                      format_func=lambda i: views.run_label(by_id[i]))
ids = tuple(picked.values())
try:
    sweeps, examples = sweep_tables(str(runs_store.path), ids)
except Exception as e:  # noqa: BLE001
    st.error(f"Could not read the robustness results: {e}")
    st.stop()
missing = [o for o, i in picked.items() if sweeps[sweeps.run_id == i].empty]
if missing:
    st.warning(f"The {' and '.join(missing)} run has no robustness sweep stored (it may have been "
               "cancelled before the sweep, or trained by an older version). Train it again to get one.")
sigmas = views.swept_sigmas(sweeps, [i for i in ids if i not in {picked[o] for o in missing}])
if not sigmas:
    st.stop()
if len({by_id[i].dataset for i in ids}) > 1:
    st.warning("These runs were trained on different datasets, so their accuracies are not comparable.")

# 2) The σ slider, the chart and the accuracies at σ.
if st.session_state.get("sigma") not in sigmas:
    st.session_state.sigma = views.nearest(sigmas, st.session_state.get("chosen_sigma", 0.1))
sigma = st.select_slider("Noise σ", options=sigmas, key="sigma", format_func=lambda s: f"{s:g}",
                         help="Standard deviation of the Gaussian noise on each pixel (pixels in [0, 1]).")
st.session_state.chosen_sigma = sigma  # the home page shows the comparison at this σ
labels = {i: (views.run_label(by_id[i]), o) for o, i in picked.items()}
st.plotly_chart(views.robustness_figure(sweeps, labels, sigma), key="robustness_chart")

at = {o: views.accuracy_at(sweeps, i, sigma) for o, i in picked.items()}
m = st.columns(3)
for col, objective in zip(m, OBJECTIVES):
    if at.get(objective):
        acc, std = at[objective]
        col.metric(f"{views.OBJECTIVE_NAMES[objective]} at σ={sigma:g}", f"{acc:.2%}",
                   help=f"± {std:.2%} over noise draws")
if at.get("gradient") and at.get("baseline"):
    diff = at["gradient"][0] - at["baseline"][0]
    m[2].metric("gradient − baseline", f"{diff * 100:+.2f} points",
                help="Accuracy difference in percentage points at this σ; positive: the gradient loss "
                     "is more accurate.")
st.download_button("Download the table (CSV)", views.robustness_csv(sweeps, labels),
                   file_name="robustness.csv", mime="text/csv")

# 3) A few test images with this noise and each model's prediction.
st.subheader(f"Test images at σ = {sigma:g}")
shown = [i for i in ids if not sweeps[sweeps.run_id == i].empty]
first = by_id[shown[0]]
seed = int(sweeps[sweeps.run_id == shown[0]].seed.iloc[0])  # the sweep's noise seed: the same images it saw
examples = {o: examples[i] for o, i in picked.items() if not examples[i].empty}
if not examples:
    st.info("No example predictions stored for these runs.")
    st.stop()
try:
    x_test, class_names = test_images(first.dataset)
except Exception as e:  # noqa: BLE001
    st.warning(f"Could not load the {first.dataset} test images: {e}")
    st.stop()
captions = views.example_captions(examples, sigma, class_names)
images = gaussian.noisy_images(x_test, [i for i, _ in captions], sigma, seed=seed)
grid = st.columns(6)
for k, ((index, caption), image) in enumerate(zip(captions, images)):
    with grid[k % 6]:
        st.image(views.upscale(image), width=112)
        st.caption(f"#{index} · {caption}")
st.caption("Bold: the true class. ✓/✗: each model's prediction on this noisy image, with its confidence.")
