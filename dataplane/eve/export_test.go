package eve

// RaceEnabled tells the external tests to skip allocation counts.
const RaceEnabled = raceEnabled
