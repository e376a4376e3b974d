// The job page's phase bars (templates/jobs/_phases.html): each segment's width is its share
// of the attempt's time. Set here, not in a style attribute, because the CSP allows no inline
// styles; set again whenever the page swaps in a fresh copy of the card (job.js refreshes it).
const MIN_SHARE = 0.02; // a 5 ms phase beside a 10 min run still shows as a sliver

function sizeBars(root) {
  for (const bar of root.querySelectorAll(".phase-bar")) {
    const segments = [...bar.querySelectorAll(".phase-seg")];
    const total = segments.reduce((sum, seg) => sum + Number(seg.dataset.ms || 0), 0) || 1;
    for (const seg of segments) {
      const share = Math.max(Number(seg.dataset.ms || 0) / total, MIN_SHARE);
      seg.style.flexGrow = String(share);
    }
  }
}

sizeBars(document);
new MutationObserver(() => sizeBars(document)).observe(document.body, {
  childList: true,
  subtree: true,
});
