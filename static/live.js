// Pages live by push, polling as the fallback (README: "How pages stay live").
// While an element's event stream is open it carries the class `push-live`, and the polls of the
// live regions inside it are skipped; when the stream drops, the polls go on as before.
// A stream refused for good (429 over the cap, 403, 204) is not tried again: the page polls.
(function () {
  function streamOf(event) { return event.detail && event.detail.source }

  document.addEventListener('htmx:sseOpen', function (event) {
    event.target.classList.add('push-live')
  })
  document.addEventListener('htmx:sseClose', function (event) {
    event.target.classList.remove('push-live')
    fetchFinalState(event.target)
  })
  // The stream ends with `completed`. If that came while the region was still being fetched, htmx
  // dropped it and the region shows the state before: fetch once more, after the fetch in hand,
  // until the region is final (rendered without live triggers), instead of waiting for a poll.
  function fetchFinalState(wrapper) {
    var region = wrapper.querySelector('[hx-trigger*="sse:"]')
    if (!region) return
    if (region.classList.contains('htmx-request')) {
      wrapper.addEventListener('htmx:afterSettle', function () { fetchFinalState(wrapper) }, { once: true })
      return
    }
    htmx.trigger(region, 'sse:completed')
  }
  document.addEventListener('htmx:sseError', function (event) {
    event.target.classList.remove('push-live')
    var source = streamOf(event)
    if (source && source.readyState === EventSource.CLOSED) {
      // The extension would retry for ever; without the attribute its retry does nothing.
      event.target.removeAttribute('sse-connect')
    }
  })
  // A poll is the one request htmx makes without a triggering event.
  document.addEventListener('htmx:confirm', function (event) {
    if (!event.detail.triggeringEvent && event.detail.elt.closest('.push-live')) {
      event.preventDefault()
    }
  })
})()
