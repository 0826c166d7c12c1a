package state

import (
	"encoding/json"
	"fmt"
)

// encode is a user state as it is stored.
func encode(st UserState) ([]byte, error) { return json.Marshal(st) }

// decode reads a stored user state.
func decode(data []byte, userID string) (UserState, error) {
	var st UserState
	if err := json.Unmarshal(data, &st); err != nil {
		return UserState{}, fmt.Errorf("decode state of %s: %w", userID, err)
	}
	return st, nil
}
