package writer

// queue is a FIFO of user ids, a ring buffer in which a user stands at
// most once, so a busy user can not crowd out the others; every operation
// but growing is O(1).
type queue struct {
	buf     []string
	head, n int
	in      map[string]bool
}

func (q *queue) len() int { return q.n }

// push queues id at the back, unless it is queued already.
func (q *queue) push(id string) {
	if q.add(id) {
		q.buf[(q.head+q.n)%len(q.buf)] = id
		q.n++
	}
}

// pushFront queues id at the front, unless it is queued already.
func (q *queue) pushFront(id string) {
	if q.add(id) {
		q.head = (q.head - 1 + len(q.buf)) % len(q.buf)
		q.buf[q.head] = id
		q.n++
	}
}

// add marks id as queued and makes room for it; false if it was queued.
func (q *queue) add(id string) bool {
	if q.in == nil {
		q.in = map[string]bool{}
	}
	if q.in[id] {
		return false
	}
	q.in[id] = true
	if q.n == len(q.buf) {
		q.regrow(max(16, 2*len(q.buf)))
	}
	return true
}

// regrow moves the queue into a ring of size (at least q.n).
func (q *queue) regrow(size int) {
	ring := make([]string, size)
	for i := range q.n {
		ring[i] = q.buf[(q.head+i)%len(q.buf)]
	}
	q.buf, q.head = ring, 0
}

// front returns the id at the front without taking it off.
func (q *queue) front() (string, bool) {
	if q.n == 0 {
		return "", false
	}
	return q.buf[q.head], true
}

// pop takes the id at the front off the queue.
func (q *queue) pop() (string, bool) {
	id, ok := q.front()
	if !ok {
		return "", false
	}
	q.buf[q.head] = ""
	q.head = (q.head + 1) % len(q.buf)
	q.n--
	delete(q.in, id)
	return id, true
}
